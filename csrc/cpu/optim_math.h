// The optimizer rules of cpu/optim.h, written once for both backends: each rule's
// scalars (a struct of T values, computed on the host in double and rounded to T, as
// PyTorch rounds its scalars), its update of element k (KILN_HD: the CPU loops of
// cpu/optim.cpp and the CUDA kernel of cuda/optim.cu call the same function), the
// mapping of its options to compile-time variants, and its preparation (checks, the
// step counters advanced, the scalars of every slot), defined in cpu/optim.cpp.
//
// The updates are PyTorch's single-tensor ones with its fused multiply-adds (add with
// alpha, addcmul, lerp); the formulas are in cpu/optim.h's header comment.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/hd.h"
#include "cpu/optim.h"

namespace kiln::optim {

// Runs f(std::bool_constant<b>{}) so that option flags become compile-time
// constants and every inner loop is branch-free.
template <typename F>
void with_flag(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// The weight decay variant: 0 without decay, 1 for L2 added to the gradient, 2 for
// decoupled decay (AdamW).
template <typename F>
void with_decay(double weight_decay, bool decoupled, F&& f) {
  if (weight_decay == 0) f(std::integral_constant<int, 0>{});
  else if (!decoupled) f(std::integral_constant<int, 1>{});
  else f(std::integral_constant<int, 2>{});
}

// torch.maximum: NaN if either is NaN (a > b is false when b is NaN, so b wins).
template <typename T>
KILN_HD inline T nan_max(T a, T b) {
  const T hi = a > b ? a : b;
  return a != a ? a : hi;
}

// torch.lerp(from, to, w) as ATen's vectorized kernel computes it: one fma,
// from `from` when |w| < 0.5, else from `to`.
template <typename T>
struct Lerp {
  T coef{};
  // 1 when the lerp starts from `from`, 0 from `to`: a float, because GCC 12
  // vectorizes a select on a float comparison but not on a scalar bool.
  T from_start{};
  Lerp() = default;
  explicit Lerp(double w)
      : coef(std::abs(w) < 0.5 ? T(w) : T(w) - T(1)), from_start(std::abs(w) < 0.5 ? 1 : 0) {}
  KILN_HD T operator()(T from, T to) const {
    return std::fma(coef, to - from, from_start > T(0) ? from : to);
  }
};

// Each update reads and writes element k of restrict pointers (param p, gradient gr,
// the state buffers) with the scalars c: the CPU's loops call it for k = 0..n-1 and
// vectorize it, the CUDA kernel for one k per thread.

// ----------------------------------------------------------------------- SGD
template <typename T>
struct SgdScalars {
  T sign, wd, mom, keep, neg_lr;
};

// FRESH: the momentum buffer is new this step (set to g).
template <typename T, bool WD, bool MOM, bool NESTEROV, bool FRESH>
KILN_HD inline void sgd_update(T* __restrict p, const T* __restrict gr, T* __restrict buf,
                               int64_t k, const SgdScalars<T>& c) {
  T g = c.sign * gr[k];
  if constexpr (WD) g = std::fma(c.wd, p[k], g);
  if constexpr (MOM) {
    const T m = FRESH ? g : std::fma(c.keep, g, buf[k] * c.mom);
    buf[k] = m;
    g = NESTEROV ? std::fma(c.mom, m, g) : m;
  }
  p[k] = std::fma(c.neg_lr, g, p[k]);
}

// f(WD, MOM, NESTEROV).
template <typename F>
void sgd_variant(const SgdOptions& o, F&& f) {
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(o.momentum != 0, [&](auto MOM) {
      with_flag(o.nesterov, [&](auto NESTEROV) { f(WD, MOM, NESTEROV); });
    });
  });
}

// ------------------------------------------------------------------- Adagrad
template <typename T>
struct AdagradScalars {
  T sign, wd, eps, neg_clr;
};

template <typename T, bool WD>
KILN_HD inline void adagrad_update(T* __restrict p, const T* __restrict gr, T* __restrict sum,
                                   int64_t k, const AdagradScalars<T>& c) {
  T g = c.sign * gr[k];
  if constexpr (WD) g = std::fma(c.wd, p[k], g);
  const T acc = std::fma(g, g, sum[k]);
  sum[k] = acc;
  p[k] += c.neg_clr * g / (std::sqrt(acc) + c.eps);
}

// f(WD).
template <typename F>
void adagrad_variant(const AdagradOptions& o, F&& f) {
  with_flag(o.weight_decay != 0, f);
}

// ------------------------------------------------------------------- RMSprop
template <typename T>
struct RmspropScalars {
  T sign, wd, eps, alpha, rest, mom, neg_lr;
  Lerp<T> lerp;
};

template <typename T, bool WD, bool CENTERED, bool MOM>
KILN_HD inline void rmsprop_update(T* __restrict p, const T* __restrict gr, T* __restrict sq,
                                   T* __restrict ga, T* __restrict buf, int64_t k,
                                   const RmspropScalars<T>& c) {
  T g = c.sign * gr[k];
  if constexpr (WD) g = std::fma(c.wd, p[k], g);
  const T v = std::fma(c.rest * g, g, sq[k] * c.alpha);
  sq[k] = v;
  T d;
  if constexpr (CENTERED) {
    const T a = c.lerp(ga[k], g);
    ga[k] = a;
    d = std::sqrt(std::fma(-a, a, v)) + c.eps;
  } else {
    d = std::sqrt(v) + c.eps;
  }
  if constexpr (MOM) {
    const T m = buf[k] * c.mom + g / d;
    buf[k] = m;
    p[k] = std::fma(c.neg_lr, m, p[k]);
  } else {
    p[k] += c.neg_lr * g / d;
  }
}

// f(WD, CENTERED, MOM).
template <typename F>
void rmsprop_variant(const RmspropOptions& o, F&& f) {
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(o.centered, [&](auto CENTERED) {
      with_flag(o.momentum > 0, [&](auto MOM) { f(WD, CENTERED, MOM); });
    });
  });
}

// ---------------------------------------------------------------------- Adam
template <typename T>
struct AdamScalars {
  T sign, wd, beta2, rest2, shrink, eps, neg_step, bc2_sqrt;
  Lerp<T> lerp;
};

// WD: with_decay's variant.
template <typename T, int WD, bool AMSGRAD>
KILN_HD inline void adam_update(T* __restrict p, const T* __restrict gr, T* __restrict m1,
                                T* __restrict m2, T* __restrict vmax, int64_t k,
                                const AdamScalars<T>& c) {
  T g = c.sign * gr[k];
  T w = p[k];
  if constexpr (WD == 1) g = std::fma(c.wd, w, g);
  if constexpr (WD == 2) w = w * c.shrink;
  const T m = c.lerp(m1[k], g);
  m1[k] = m;
  T v = std::fma(c.rest2 * g, g, m2[k] * c.beta2);
  m2[k] = v;
  if constexpr (AMSGRAD) {
    v = nan_max(vmax[k], v);
    vmax[k] = v;
  }
  p[k] = w + c.neg_step * m / (std::sqrt(v) / c.bc2_sqrt + c.eps);
}

// f(WD, AMSGRAD).
template <typename F>
void adam_variant(const AdamOptions& o, F&& f) {
  with_flag(o.amsgrad, [&](auto AMSGRAD) {
    with_decay(o.weight_decay, o.decoupled_weight_decay, [&](auto WD) { f(WD, AMSGRAD); });
  });
}

// ------------------------------------------------------------------ Adadelta
template <typename T>
struct AdadeltaScalars {
  T sign, wd, rho, rest, eps, neg_lr;
};

template <typename T, bool WD>
KILN_HD inline void adadelta_update(T* __restrict p, const T* __restrict gr, T* __restrict sq,
                                    T* __restrict acc, int64_t k, const AdadeltaScalars<T>& c) {
  T g = c.sign * gr[k];
  if constexpr (WD) g = std::fma(c.wd, p[k], g);
  const T v = std::fma(c.rest * g, g, sq[k] * c.rho);
  sq[k] = v;
  const T d = std::sqrt(acc[k] + c.eps) / std::sqrt(v + c.eps) * g;
  acc[k] = std::fma(c.rest * d, d, acc[k] * c.rho);
  p[k] = std::fma(c.neg_lr, d, p[k]);
}

// f(WD).
template <typename F>
void adadelta_variant(const AdadeltaOptions& o, F&& f) {
  with_flag(o.weight_decay != 0, f);
}

// -------------------------------------------------------------------- Adamax
template <typename T>
struct AdamaxScalars {
  T sign, wd, beta2, eps, neg_clr;
  Lerp<T> lerp;
};

template <typename T, bool WD>
KILN_HD inline void adamax_update(T* __restrict p, const T* __restrict gr, T* __restrict m1,
                                  T* __restrict inf, int64_t k, const AdamaxScalars<T>& c) {
  T g = c.sign * gr[k];
  if constexpr (WD) g = std::fma(c.wd, p[k], g);
  const T m = c.lerp(m1[k], g);
  m1[k] = m;
  const T u = nan_max(inf[k] * c.beta2, std::abs(g) + c.eps);
  inf[k] = u;
  p[k] += c.neg_clr * m / u;
}

// f(WD).
template <typename F>
void adamax_variant(const AdamaxOptions& o, F&& f) {
  with_flag(o.weight_decay != 0, f);
}

// --------------------------------------------------------------------- NAdam
template <typename T>
struct NadamScalars {
  T sign, wd, beta2, rest2, shrink, eps, bc2, neg_grad_step, neg_avg_step;
  Lerp<T> lerp;
};

// WD: with_decay's variant.
template <typename T, int WD>
KILN_HD inline void nadam_update(T* __restrict p, const T* __restrict gr, T* __restrict m1,
                                 T* __restrict m2, int64_t k, const NadamScalars<T>& c) {
  T g = c.sign * gr[k];
  T w = p[k];
  if constexpr (WD == 1) g = std::fma(c.wd, w, g);
  if constexpr (WD == 2) w = w * c.shrink;
  const T m = c.lerp(m1[k], g);
  m1[k] = m;
  const T v = std::fma(c.rest2 * g, g, m2[k] * c.beta2);
  m2[k] = v;
  const T d = std::sqrt(v / c.bc2) + c.eps;
  w += c.neg_grad_step * g / d;
  p[k] = w + c.neg_avg_step * m / d;
}

// f(WD).
template <typename F>
void nadam_variant(const NadamOptions& o, F&& f) {
  with_decay(o.weight_decay, o.decoupled_weight_decay, f);
}

// --------------------------------------------------------------------- RAdam
// rectify: rho_t > 5 at the slot's step (a per-slot choice, not an option).
template <typename T>
struct RadamScalars {
  T sign, wd, beta2, rest2, shrink, eps, bc1, lr, bc2_sqrt, rect;
  Lerp<T> lerp;
  bool rectify;
};

template <typename T, int WD, bool RECTIFY>
KILN_HD inline void radam_update(T* __restrict p, const T* __restrict gr, T* __restrict m1,
                                 T* __restrict m2, int64_t k, const RadamScalars<T>& c) {
  T g = c.sign * gr[k];
  T w = p[k];
  if constexpr (WD == 1) g = std::fma(c.wd, w, g);
  if constexpr (WD == 2) w = w * c.shrink;
  const T m = c.lerp(m1[k], g);
  m1[k] = m;
  const T v = std::fma(c.rest2 * g, g, m2[k] * c.beta2);
  m2[k] = v;
  T u = m / c.bc1 * c.lr;
  if constexpr (RECTIFY) u = u * (c.bc2_sqrt / (std::sqrt(v) + c.eps)) * c.rect;
  p[k] = w - u;
}

// f(WD).
template <typename F>
void radam_variant(const RadamOptions& o, F&& f) {
  with_decay(o.weight_decay, o.decoupled_weight_decay, f);
}

// ------------------------------------------------------------- preparation
// Each checks the options and the slots (ValueError naming op, before anything
// changes: cpu/optim.h's rules), advances the slots' step counters (and NAdam's
// mu_products), which live on the host, and returns the scalars of every slot. The
// step kernels of both backends start with it.
template <typename T>
std::vector<SgdScalars<T>> sgd_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                       const SgdOptions& o);
template <typename T>
std::vector<AdagradScalars<T>> adagrad_prepare(const char* op,
                                               const std::vector<ParamSlot<T>>& slots,
                                               const AdagradOptions& o);
template <typename T>
std::vector<RmspropScalars<T>> rmsprop_prepare(const char* op,
                                               const std::vector<ParamSlot<T>>& slots,
                                               const RmspropOptions& o);
template <typename T>
std::vector<AdamScalars<T>> adam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                         const AdamOptions& o);
template <typename T>
std::vector<AdadeltaScalars<T>> adadelta_prepare(const char* op,
                                                 const std::vector<ParamSlot<T>>& slots,
                                                 const AdadeltaOptions& o);
template <typename T>
std::vector<AdamaxScalars<T>> adamax_prepare(const char* op,
                                             const std::vector<ParamSlot<T>>& slots,
                                             const AdamaxOptions& o);
template <typename T>
std::vector<NadamScalars<T>> nadam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                           const NadamOptions& o);
template <typename T>
std::vector<RadamScalars<T>> radam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                           const RadamOptions& o);

}  // namespace kiln::optim
