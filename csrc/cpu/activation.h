// Activations: elementwise ones, PReLU, softmax and log-softmax, forward and backward.
//
//   op          forward  y = f(x)                          backward  dx = dy * f'
//   relu        max(x, 0)                                  dy * [x > 0]
//   leaky_relu  x > 0 ? x : a*x                            dy * (x > 0 ? 1 : a)
//   elu         x > 0 ? x : a*(exp(x) - 1)                 dy * (x > 0 ? 1 : a*exp(x))
//   selu        s * elu(x, A)   s = 1.0507.., A = 1.6733.. dy * s * (x > 0 ? 1 : A*exp(x))
//   gelu        x * Phi(x) = x/2 * (1 + erf(x/sqrt2))      dy * (Phi(x) + x * phi(x))
//   gelu tanh   x/2 * (1 + tanh(u)),                       dy * (1/2 (1 + t) + x/2 (1 - t^2) u')
//                 u = sqrt(2/pi) (x + 0.044715 x^3)          t = tanh(u)
//   sigmoid     1 / (1 + exp(-x))                          dy * y * (1 - y)    (from the output)
//   tanh        tanh(x)                                    dy * (1 - y^2)      (from the output)
//
//   prelu       x (outer, C, inner), w (C) or (1):
//               y = x > 0 ? x : w[c] x                     dx = dy * (x > 0 ? 1 : w[c])
//                                                          dw[c] = sum_{x <= 0} dy * x
//
// Softmax over one dimension, on the (outer, D, inner) view of a contiguous tensor
// (D = size of the reduced dimension, inner = product of the dimensions after it):
//   softmax      y_d = exp(x_d - m) / sum_e exp(x_e - m),  m = max_e x_e
//                dx_d = y_d * (dy_d - sum_e dy_e y_e)
//   log_softmax  y_d = x_d - m - log(sum_e exp(x_e - m))
//                dx_d = dy_d - exp(y_d) * sum_e dy_e
// Subtracting the max keeps exp from overflowing; both backward passes read only
// the saved output, so the input need not be kept.
//
// Derivatives at the kinks follow PyTorch: relu 0 and leaky_relu/prelu/elu/selu
// the negative branch at x == 0. In float, exp/expm1/tanh/erf come from cpu/vmath.h
// so that the loops vectorize (erf: the same approximation as PyTorch's float path).
#pragma once

#include <cstdint>

namespace kiln {

enum class Pointwise { ReLU, LeakyReLU, ELU, SELU, GELU, GELUTanh, Sigmoid, Tanh };

// True for the ops whose backward reads the forward output y instead of the input x.
bool backward_uses_output(Pointwise op);

// alpha: leaky_relu's negative slope or elu's alpha; ignored by the other ops.
template <typename T>
void activation_forward(Pointwise op, T alpha, const T* x, T* y, int64_t n);
// saved: y for sigmoid and tanh, x otherwise (see backward_uses_output).
template <typename T>
void activation_backward(Pointwise op, T alpha, const T* saved, const T* dy, T* dx, int64_t n);

// x, y: (outer, channels, inner); w: (weight_numel,) with weight_numel 1 or channels.
template <typename T>
void prelu_forward(const T* x, const T* w, T* y, int64_t outer, int64_t channels, int64_t inner,
                   int64_t weight_numel);
// dx (same shape as x) and dw (weight_numel,) may each be null when not wanted.
template <typename T>
void prelu_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t outer,
                    int64_t channels, int64_t inner, int64_t weight_numel);

// x, y: (outer, dim, inner); log selects log_softmax.
template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log);
// y: the forward output; dx may alias dy.
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner,
                      bool log);

}  // namespace kiln
