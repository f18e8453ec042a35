// The pointwise activations: one struct per op, its forward f and its derivative
// df side by side, and KILN_POINTWISE_OPS, the one list of them. The enum, the
// kernels' dispatch (cpu/activation.cpp), the bindings _C.<name>_forward /
// _C.<name>_backward and their metadata _C.pointwise_ops() (csrc/bindings/
// activation.cpp) are all generated from that list, so an op is either complete
// or absent.
//
// An op is a struct with
//   info            PointwiseInfo: Python's name, the formula for the docstring,
//                   what backward reads (x or y = f(x)) and its one parameter
//   f(x, p)         the forward, y = f(x; p)
//   df(s, g, p)     the gradient with respect to x, g * f'(x), from the saved s
//                   (x, or y when info.saved is Saved::Output) and g = dL/dy
// p is the op's scalar parameter (leaky_relu's slope, elu's alpha), 0 for the ops
// without one. To add an op: write its struct below and add it to
// KILN_POINTWISE_OPS; then F.<name> and nn.<Name> in Python, and tests.
//
// Derivatives at the kinks follow PyTorch: relu 0 and leaky_relu/elu/selu the
// negative branch at x == 0; hardswish 0 at x = -3 and 1 at x = 3. relu, elu and
// selu test x <= 0 (not x > 0) so that a NaN input passes the gradient through, as
// PyTorch's threshold and elu backwards do. In float, exp/expm1/tanh/erf come from
// cpu/vmath.h so that the loops vectorize (erf: the same approximation as
// PyTorch's float path). f and df are KILN_HD: the CUDA kernels (cuda/activation.cu)
// instantiate the same structs.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/check.h"
#include "common/hd.h"
#include "cpu/vmath.h"

namespace kiln {

// What an op's backward reads besides the output gradient.
enum class Saved { Input, Output };

struct PointwiseInfo {
  const char* name;     // Python's: _C.<name>_forward and _C.<name>_backward
  const char* formula;  // the forward, in the docstring's words
  Saved saved;
  const char* param = nullptr;    // the scalar parameter's name, or none
  double default_param = 0;       // its default, for a number
  const char* variant = nullptr;  // for a string parameter: the value choosing this op
};
// Ops with a string parameter share one name, one struct per value (gelu's
// approximate='none' and 'tanh'); the first listed is the default.

namespace pointwise {

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSqrtHalf = 0.70710678118654752440;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

// relu: y = max(x, 0); dx = g * [y > 0] ([x > 0] read from y, which has its sign; NaN
// passes g). Written x < 0 ? 0 : x so that NaN passes through, as in PyTorch. Backward
// reads the output, as PyTorch's does: an in-place op on relu's output before backward is
// an error in both, and relu_ on a tensor another op saved is not.
struct ReLU {
  static constexpr PointwiseInfo info{"relu", "max(input, 0)", Saved::Output};
  template <typename T>
  KILN_HD static T f(T x, T) { return x < T(0) ? T(0) : x; }
  template <typename T>
  KILN_HD static T df(T y, T g, T) { return y <= T(0) ? T(0) : g; }
};

// leaky_relu: y = x > 0 ? x : a x; dx = g * (x > 0 ? 1 : a).
struct LeakyReLU {
  static constexpr PointwiseInfo info{"leaky_relu", "input > 0 ? input : negative_slope * input",
                                      Saved::Input, "negative_slope", 0.01};
  template <typename T>
  KILN_HD static T f(T x, T a) { return x > T(0) ? x : a * x; }
  template <typename T>
  KILN_HD static T df(T x, T g, T a) { return x > T(0) ? g : a * g; }
};

// elu: y = x > 0 ? x : a (exp(x) - 1); dx = g * (x > 0 ? 1 : a exp(x)).
struct ELU {
  static constexpr PointwiseInfo info{"elu", "input > 0 ? input : alpha * (exp(input) - 1)",
                                      Saved::Input, "alpha", 1.0};
  template <typename T>
  KILN_HD static T f(T x, T a) { return x > T(0) ? x : a * vmath::expm1(x); }
  template <typename T>
  KILN_HD static T df(T x, T g, T a) { return x <= T(0) ? g * a * vmath::exp(x) : g; }
};

// selu: y = s elu(x, A) with s = 1.0507.., A = 1.6733.. (self-normalizing);
// dx = g * s * (x > 0 ? 1 : A exp(x)).
struct SELU {
  static constexpr PointwiseInfo info{
      "selu", "scale * elu(input, alpha) with SELU's fixed constants", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) {
    return T(kSeluScale) * (x > T(0) ? x : T(kSeluAlpha) * vmath::expm1(x));
  }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    return T(kSeluScale) * g * (x <= T(0) ? T(kSeluAlpha) * vmath::exp(x) : T(1));
  }
};

// gelu (approximate='none'): y = x Phi(x) = x/2 (1 + erf(x / sqrt2));
// dx = g * (Phi(x) + x phi(x)), phi the standard normal density.
struct GELU {
  static constexpr PointwiseInfo info{
      "gelu", "input * Phi(input) (approximate='none': exact erf; 'tanh': its tanh approximation)",
      Saved::Input, "approximate", 0, "none"};
  template <typename T>
  KILN_HD static T f(T x, T) { return T(0.5) * x * (T(1) + vmath::erf(x * T(kSqrtHalf))); }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    const T cdf = T(0.5) * (T(1) + vmath::erf(x * T(kSqrtHalf)));
    const T pdf = T(kInvSqrt2Pi) * vmath::exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};

// gelu (approximate='tanh'): y = x/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
// dx = g * (1/2 (1 + t) + x/2 (1 - t^2) u').
struct GELUTanh {
  static constexpr PointwiseInfo info{"gelu", GELU::info.formula, Saved::Input, "approximate", 0,
                                      "tanh"};
  template <typename T>
  KILN_HD static T u(T x) { return T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x); }
  template <typename T>
  KILN_HD static T f(T x, T) { return T(0.5) * x * (T(1) + vmath::tanh(u(x))); }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    const T t = vmath::tanh(u(x));
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
  }
};

// sigmoid: y = 1 / (1 + exp(-x)); dx = g * y (1 - y), from the output.
struct Sigmoid {
  static constexpr PointwiseInfo info{"sigmoid", "1 / (1 + exp(-input))", Saved::Output};
  template <typename T>
  KILN_HD static T f(T x, T) { return T(1) / (T(1) + vmath::exp(-x)); }
  template <typename T>
  KILN_HD static T df(T y, T g, T) { return g * y * (T(1) - y); }
};

// tanh: y = tanh(x); dx = g * (1 - y^2), from the output.
struct Tanh {
  static constexpr PointwiseInfo info{"tanh", "tanh(input)", Saved::Output};
  template <typename T>
  KILN_HD static T f(T x, T) { return vmath::tanh(x); }
  template <typename T>
  KILN_HD static T df(T y, T g, T) { return g * (T(1) - y * y); }
};

// hardswish (MobileNetV3): y = x relu6(x + 3) / 6;
// dx = g * (x <= -3 ? 0 : x >= 3 ? 1 : x/3 + 1/2). PyTorch's order of operations,
// so y(-inf) is NaN as there, and its gradient at the ends: 0 at -3, 1 at 3; at NaN
// the gradient is NaN, as PyTorch's vectorized path gives (its scalar path gives g).
struct Hardswish {
  static constexpr PointwiseInfo info{"hardswish", "input * relu6(input + 3) / 6", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) {
    T r = x + T(3);
    r = r < T(0) ? T(0) : r;  // max(r, 0) and min(r, 6) that keep a NaN
    r = r > T(6) ? T(6) : r;
    return x * r / T(6);
  }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    return x <= T(-3) ? T(0) : x >= T(3) ? g : g * (x / T(3) + T(0.5));
  }
};

// silu (swish): y = x sigmoid(x) = x / (1 + exp(-x));
// dx = g * s (1 + x (1 - s)), s = sigmoid(x).
struct SiLU {
  static constexpr PointwiseInfo info{"silu", "input * sigmoid(input)", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) { return x / (T(1) + vmath::exp(-x)); }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    const T s = T(1) / (T(1) + vmath::exp(-x));
    return g * s * (T(1) + x * (T(1) - s));
  }
};

// hardsigmoid: y = relu6(x + 3) / 6; dx = g / 6 strictly inside (-3, 3), else 0 (NaN
// included, as PyTorch's backward); the clamps keep a NaN input NaN.
struct Hardsigmoid {
  static constexpr PointwiseInfo info{"hardsigmoid", "relu6(input + 3) / 6", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) {
    T r = x + T(3);
    r = r < T(0) ? T(0) : r;
    r = r > T(6) ? T(6) : r;
    return r / T(6);
  }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {  // PyTorch multiplies by 1/6 rounded to float, in both dtypes
    return x > T(-3) && x < T(3) ? g * T(1.0f / 6.0f) : T(0);
  }
};

// mish: y = x tanh(softplus(x)) = x tanh(log1p(exp(x)));
// dx = g * (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x)) (PyTorch's form).
struct Mish {
  static constexpr PointwiseInfo info{"mish", "input * tanh(softplus(input))", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) { return x * vmath::tanh(T(std::log1p(vmath::exp(x)))); }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    const T s = T(1) / (T(1) + vmath::exp(-x));
    const T t = vmath::tanh(T(std::log1p(vmath::exp(x))));
    return g * (t + x * s * (T(1) - t * t));
  }
};

// logsigmoid: y = log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for any x;
// dx = g * ([x < 0] -/+ z / (1 + z)), z = exp(-|x|) (= g * sigmoid(-x), PyTorch's form).
struct LogSigmoid {
  static constexpr PointwiseInfo info{"logsigmoid", "log(1 / (1 + exp(-input)))", Saved::Input};
  template <typename T>
  KILN_HD static T f(T x, T) {
    const T m = x < T(0) ? x : T(0);
    return m - T(std::log1p(vmath::exp(-std::abs(x))));
  }
  template <typename T>
  KILN_HD static T df(T x, T g, T) {
    const bool neg = x < T(0);
    const T z = vmath::exp(-std::abs(x));
    return g * ((neg ? T(1) : T(0)) - (neg ? T(1) : T(-1)) * (z / (T(1) + z)));
  }
};

}  // namespace pointwise

// The list. X(Op) for each struct of kiln::pointwise.
#define KILN_POINTWISE_OPS(X) \
  X(ReLU)                     \
  X(LeakyReLU)                \
  X(ELU)                      \
  X(SELU)                     \
  X(GELU)                     \
  X(GELUTanh)                 \
  X(Sigmoid)                  \
  X(Tanh)                     \
  X(Hardswish)                \
  X(SiLU)                     \
  X(Hardsigmoid)              \
  X(Mish)                     \
  X(LogSigmoid)

#define KILN_POINTWISE_ENUMERATOR(Op) Op,
enum class Pointwise { KILN_POINTWISE_OPS(KILN_POINTWISE_ENUMERATOR) };
#undef KILN_POINTWISE_ENUMERATOR

#define KILN_POINTWISE_VALUE(Op) Pointwise::Op,
inline constexpr Pointwise kPointwiseOps[] = {KILN_POINTWISE_OPS(KILN_POINTWISE_VALUE)};
#undef KILN_POINTWISE_VALUE

// Calls visit(pointwise::Op{}) with the struct of op, and returns its result.
template <typename Visit>
decltype(auto) visit_pointwise(Pointwise op, Visit&& visit) {
  switch (op) {
#define KILN_POINTWISE_CASE(Op) \
  case Pointwise::Op:           \
    return visit(pointwise::Op{});
    KILN_POINTWISE_OPS(KILN_POINTWISE_CASE)
#undef KILN_POINTWISE_CASE
  }
  fail("pointwise: no op numbered ", static_cast<int>(op));
}

inline const PointwiseInfo& pointwise_info(Pointwise op) {
  return visit_pointwise(op, [](auto o) -> const PointwiseInfo& { return decltype(o)::info; });
}

// y = f(x; param) over n elements.
template <typename T>
void pointwise_forward(Pointwise op, T param, const T* x, T* y, int64_t n);
// dx = dy * f'; saved: x, or y for the ops whose info.saved is Saved::Output.
template <typename T>
void pointwise_backward(Pointwise op, T param, const T* saved, const T* dy, T* dx, int64_t n);

}  // namespace kiln
