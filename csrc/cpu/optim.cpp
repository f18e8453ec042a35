#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <type_traits>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/lane_sum.h"

namespace kiln {
namespace {

// Elements per parallel chunk: ~0.5 MB of traffic for Adam, enough that waking
// a worker (a few microseconds) pays for itself.
constexpr int64_t kGrain = 1 << 15;
// Fixed reduction blocks for the norms: partial sums do not depend on threads.
constexpr int64_t kBlock = 1 << 14;

// Calls piece(i, begin, end) for every part [begin, end) of tensor i that a
// chunk of the flattened range [0, sum numel) covers; chunks run in parallel.
template <typename Numel, typename F>
void walk(size_t count, Numel&& numel, int64_t grain, F&& piece) {
  std::vector<int64_t> start(count + 1, 0);
  for (size_t i = 0; i < count; ++i) start[i + 1] = start[i] + numel(i);
  parallel_for(0, start[count], grain, [&](int64_t b, int64_t e) {
    size_t i = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; b < e; ++i) {
      const int64_t stop = std::min(e, start[i + 1]);
      if (stop > b) piece(i, b - start[i], stop - start[i]);
      b = std::max(b, stop);
    }
  });
}

template <typename T>
void walk_slots(const std::vector<ParamSlot<T>>& slots,
                const std::function<void(size_t, int64_t, int64_t)>& piece) {
  walk(slots.size(), [&](size_t i) { return slots[i].numel; }, kGrain, piece);
}

// Runs f(std::bool_constant<b>{}) so that option flags become compile-time
// constants and every inner loop is branch-free.
template <typename F>
void with_flag(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// torch.lerp: weight below 0.5 in magnitude interpolates from `from`, above it
// from `to` (both as one fma, like ATen's vectorized lerp).
template <typename T>
inline T lerp(T from, T to, T w, bool small) {
  return small ? std::fma(w, to - from, from) : std::fma(w - T(1), to - from, to);
}

// torch.maximum: NaN if either is NaN.
template <typename T>
inline T nan_max(T a, T b) {
  return (a != a || b != b) ? a + b : (a > b ? a : b);
}

void check_common(const char* op, double lr, double weight_decay) {
  if (!(lr >= 0)) fail(op, ": invalid learning rate ", lr, " (expected lr >= 0)");
  if (!(weight_decay >= 0))
    fail(op, ": invalid weight_decay ", weight_decay, " (expected weight_decay >= 0)");
}

void check_eps(const char* op, double eps) {
  if (!(eps >= 0)) fail(op, ": invalid eps ", eps, " (expected eps >= 0)");
}

struct Buffer {
  size_t index;
  const char* name;
  bool needed;
};

// Every slot must have data for its size, the buffers the options need and,
// for the rules that count steps, a step counter.
template <typename T>
void check_slots(const char* op, const std::vector<ParamSlot<T>>& slots,
                 std::initializer_list<Buffer> buffers, bool counts_steps) {
  for (size_t i = 0; i < slots.size(); ++i) {
    const ParamSlot<T>& s = slots[i];
    if (s.numel < 0) fail(op, ": slot ", i, " has a negative size ", s.numel);
    if (counts_steps && !s.step) fail(op, ": slot ", i, " has no step counter");
    if (s.numel == 0) continue;
    if (!s.param || !s.grad) fail(op, ": slot ", i, " has no parameter or gradient data");
    for (const Buffer& buf : buffers)
      if (buf.needed && !s.state[buf.index])
        fail(op, ": slot ", i, " has no ", buf.name, " buffer");
  }
}

// Increments every slot's step counter (float32, as PyTorch) and returns it in double.
template <typename T>
std::vector<double> advance_steps(const std::vector<ParamSlot<T>>& slots) {
  std::vector<double> steps(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    *slots[i].step += 1.0f;
    steps[i] = *slots[i].step;
  }
  return steps;
}

}  // namespace

// ----------------------------------------------------------------------- SGD
template <typename T>
void sgd_step(const char* op, const std::vector<ParamSlot<T>>& slots, const SgdOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  if (!(o.momentum >= 0)) fail(op, ": invalid momentum ", o.momentum, " (expected >= 0)");
  if (!std::isfinite(o.dampening)) fail(op, ": invalid dampening ", o.dampening);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail(op, ": Nesterov momentum requires a momentum and zero dampening");
  const bool momentum = o.momentum != 0;
  check_slots(op, slots, {{0, "momentum_buffer", momentum}}, false);
  const T sign = o.maximize ? T(-1) : T(1), wd = T(o.weight_decay), mom = T(o.momentum),
          keep = T(1 - o.dampening), neg_lr = T(-o.lr);
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(momentum, [&](auto MOM) {
      with_flag(o.nesterov, [&](auto NESTEROV) {
        walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
          const ParamSlot<T>& s = slots[i];
          T* __restrict p = s.param;
          const T* __restrict gr = s.grad;
          T* __restrict buf = s.state[0];
          const bool fresh = s.fresh;
          for (int64_t k = b; k < e; ++k) {
            T g = sign * gr[k];
            if constexpr (WD) g = std::fma(wd, p[k], g);
            if constexpr (MOM) {
              const T m = fresh ? g : std::fma(keep, g, buf[k] * mom);
              buf[k] = m;
              if constexpr (NESTEROV) g = std::fma(mom, m, g);
              else g = m;
            }
            p[k] = std::fma(neg_lr, g, p[k]);
          }
        });
      });
    });
  });
}

// ------------------------------------------------------------------- Adagrad
template <typename T>
void adagrad_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const AdagradOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.lr_decay >= 0)) fail(op, ": invalid lr_decay ", o.lr_decay, " (expected >= 0)");
  check_slots(op, slots, {{0, "sum", true}}, true);
  const std::vector<double> steps = advance_steps(slots);
  const T sign = o.maximize ? T(-1) : T(1), wd = T(o.weight_decay), eps = T(o.eps);
  with_flag(o.weight_decay != 0, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      const T neg_clr = T(-(o.lr / (1 + (steps[i] - 1) * o.lr_decay)));
      T* __restrict p = s.param;
      const T* __restrict gr = s.grad;
      T* __restrict sum = s.state[0];
      for (int64_t k = b; k < e; ++k) {
        T g = sign * gr[k];
        if constexpr (WD) g = std::fma(wd, p[k], g);
        const T acc = std::fma(g, g, sum[k]);
        sum[k] = acc;
        p[k] += neg_clr * g / (std::sqrt(acc) + eps);
      }
    });
  });
}

// ------------------------------------------------------------------- RMSprop
template <typename T>
void rmsprop_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const RmspropOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.alpha >= 0)) fail(op, ": invalid alpha ", o.alpha, " (expected alpha >= 0)");
  if (!(o.momentum >= 0)) fail(op, ": invalid momentum ", o.momentum, " (expected >= 0)");
  const bool momentum = o.momentum > 0;
  check_slots(op, slots,
              {{0, "square_avg", true},
               {1, "grad_avg", o.centered},
               {2, "momentum_buffer", momentum}},
              true);
  advance_steps(slots);
  const T sign = o.maximize ? T(-1) : T(1), wd = T(o.weight_decay), eps = T(o.eps),
          alpha = T(o.alpha), rest = T(1 - o.alpha), mom = T(o.momentum), neg_lr = T(-o.lr);
  const bool small = std::abs(1 - o.alpha) < 0.5;
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(o.centered, [&](auto CENTERED) {
      with_flag(momentum, [&](auto MOM) {
        walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
          const ParamSlot<T>& s = slots[i];
          T* __restrict p = s.param;
          const T* __restrict gr = s.grad;
          T* __restrict sq = s.state[0];
          T* __restrict ga = s.state[1];
          T* __restrict buf = s.state[2];
          for (int64_t k = b; k < e; ++k) {
            T g = sign * gr[k];
            if constexpr (WD) g = std::fma(wd, p[k], g);
            const T v = std::fma(rest * g, g, sq[k] * alpha);
            sq[k] = v;
            T d;
            if constexpr (CENTERED) {
              const T a = lerp(ga[k], g, rest, small);
              ga[k] = a;
              d = std::sqrt(std::fma(-a, a, v)) + eps;
            } else {
              d = std::sqrt(v) + eps;
            }
            if constexpr (MOM) {
              const T m = buf[k] * mom + g / d;
              buf[k] = m;
              p[k] = std::fma(neg_lr, m, p[k]);
            } else {
              p[k] += neg_lr * g / d;
            }
          }
        });
      });
    });
  });
}

// ---------------------------------------------------------------------- Adam
template <typename T>
void adam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.beta1 >= 0 && o.beta1 < 1))
    fail(op, ": invalid beta1 ", o.beta1, " (expected 0 <= beta1 < 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1))
    fail(op, ": invalid beta2 ", o.beta2, " (expected 0 <= beta2 < 1)");
  check_slots(op, slots,
              {{0, "exp_avg", true}, {1, "exp_avg_sq", true}, {2, "max_exp_avg_sq", o.amsgrad}},
              true);
  const std::vector<double> steps = advance_steps(slots);
  // Per slot: -lr / bias_correction1 and sqrt(bias_correction2), in double as PyTorch.
  std::vector<std::array<T, 2>> scalars(slots.size());
  for (size_t i = 0; i < slots.size(); ++i)
    scalars[i] = {T(-(o.lr / (1 - std::pow(o.beta1, steps[i])))),
                  T(std::pow(1 - std::pow(o.beta2, steps[i]), 0.5))};
  const T sign = o.maximize ? T(-1) : T(1), wd = T(o.weight_decay), eps = T(o.eps),
          w1 = T(1 - o.beta1), beta2 = T(o.beta2), rest2 = T(1 - o.beta2),
          shrink = T(1 - o.lr * o.weight_decay);
  const bool small = std::abs(1 - o.beta1) < 0.5;
  // 0: no weight decay, 1: L2 added to the gradient, 2: decoupled (AdamW).
  const int wd_mode = o.weight_decay == 0 ? 0 : (o.decoupled_weight_decay ? 2 : 1);
  auto run = [&](auto WD, auto AMSGRAD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      const T neg_step = scalars[i][0], bc2_sqrt = scalars[i][1];
      T* __restrict p = s.param;
      const T* __restrict gr = s.grad;
      T* __restrict m1 = s.state[0];
      T* __restrict m2 = s.state[1];
      T* __restrict vmax = s.state[2];
      for (int64_t k = b; k < e; ++k) {
        T g = sign * gr[k];
        T w = p[k];
        if constexpr (WD == 1) g = std::fma(wd, w, g);
        if constexpr (WD == 2) w = w * shrink;
        const T m = lerp(m1[k], g, w1, small);
        m1[k] = m;
        T v = std::fma(rest2 * g, g, m2[k] * beta2);
        m2[k] = v;
        if constexpr (AMSGRAD) {
          v = nan_max(vmax[k], v);
          vmax[k] = v;
        }
        p[k] = w + neg_step * m / (std::sqrt(v) / bc2_sqrt + eps);
      }
    });
  };
  with_flag(o.amsgrad, [&](auto AMSGRAD) {
    if (wd_mode == 0) run(std::integral_constant<int, 0>{}, AMSGRAD);
    else if (wd_mode == 1) run(std::integral_constant<int, 1>{}, AMSGRAD);
    else run(std::integral_constant<int, 2>{}, AMSGRAD);
  });
}

// ------------------------------------------------------------------ clipping
namespace {

inline bool is_pos_inf(double q) { return q == std::numeric_limits<double>::infinity(); }
inline bool is_neg_inf(double q) { return q == -std::numeric_limits<double>::infinity(); }

// Max (or min) of |x| over n values; NaN wins, as in torch's max reduction.
template <typename T>
double abs_extreme(const T* x, int64_t n, bool want_max) {
  constexpr int kLanes = 16;
  T acc[kLanes];
  const T init = want_max ? T(0) : std::numeric_limits<T>::infinity();
  std::fill(acc, acc + kLanes, init);
  auto pick = [want_max](T a, T v) {
    return (v != v || a != a) ? a + v : ((want_max ? v > a : v < a) ? v : a);
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = pick(acc[j], std::abs(x[i + j]));
  for (int j = 0; i + j < n; ++j) acc[j] = pick(acc[j], std::abs(x[i + j]));
  T r = acc[0];
  for (int j = 1; j < kLanes; ++j) r = pick(r, acc[j]);
  return r;
}

// sum of |x|^q (q = 0: count of nonzeros) over n values.
template <typename T>
double power_sum(const T* x, int64_t n, double q) {
  if (q == 2) return lane_sum(n, [&](int64_t i) { return double(x[i]) * double(x[i]); });
  if (q == 1) return lane_sum(n, [&](int64_t i) { return std::abs(double(x[i])); });
  if (q == 0) return lane_sum(n, [&](int64_t i) { return x[i] != T(0) ? 1.0 : 0.0; });
  return lane_sum(n, [&](int64_t i) { return std::pow(std::abs(double(x[i])), q); });
}

// The q-norm from a power sum (or from the extreme for q = +-inf).
double finish_norm(double acc, double q) {
  if (is_pos_inf(q) || is_neg_inf(q) || q == 0 || q == 1) return acc;
  if (q == 2) return std::sqrt(acc);
  return std::pow(acc, 1 / q);
}

void check_norm_type(double q) {
  if (std::isnan(q)) fail("clip_grad_norm_: norm_type must be a number, got nan");
}

}  // namespace

template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q) {
  check_norm_type(q);
  // Blocks of at most kBlock elements that never straddle two tensors.
  std::vector<size_t> owner;
  std::vector<int64_t> first;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].numel < 0) fail("clip_grad_norm_: tensor ", i, " has a negative size");
    for (int64_t b = 0; b < tensors[i].numel; b += kBlock) {
      owner.push_back(i);
      first.push_back(b);
    }
  }
  const bool extreme = is_pos_inf(q) || is_neg_inf(q);
  std::vector<double> partial(owner.size());
  parallel_for(0, static_cast<int64_t>(owner.size()), std::max<int64_t>(1, kGrain / kBlock),
               [&](int64_t b0, int64_t b1) {
                 for (int64_t k = b0; k < b1; ++k) {
                   const Span<const T>& t = tensors[owner[k]];
                   const T* x = t.data + first[k];
                   const int64_t n = std::min(kBlock, t.numel - first[k]);
                   partial[k] = extreme ? abs_extreme(x, n, is_pos_inf(q)) : power_sum(x, n, q);
                 }
               });
  std::vector<double> norms(tensors.size(),
                            is_neg_inf(q) ? std::numeric_limits<double>::infinity() : 0.0);
  for (size_t k = 0; k < owner.size(); ++k) {
    double& acc = norms[owner[k]];
    const double v = partial[k];
    if (!extreme) acc += v;
    else if (std::isnan(v) || std::isnan(acc)) acc = acc + v;
    else acc = is_pos_inf(q) ? std::max(acc, v) : std::min(acc, v);
  }
  for (double& v : norms) v = finish_norm(v, q);
  return norms;
}

double vector_norm(const std::vector<double>& values, double q) {
  check_norm_type(q);
  if (values.empty()) return 0;
  if (is_pos_inf(q) || is_neg_inf(q))
    return abs_extreme(values.data(), static_cast<int64_t>(values.size()), is_pos_inf(q));
  return finish_norm(power_sum(values.data(), static_cast<int64_t>(values.size()), q), q);
}

template <typename T>
void scale_(const std::vector<Span<T>>& tensors, double factor) {
  const T f = T(factor);
  walk(tensors.size(), [&](size_t i) { return tensors[i].numel; }, kGrain,
       [&](size_t i, int64_t b, int64_t e) {
         T* __restrict x = tensors[i].data;
         for (int64_t k = b; k < e; ++k) x[k] *= f;
       });
}

template <typename T>
void clamp_(const std::vector<Span<T>>& tensors, double lo, double hi) {
  if (std::isnan(lo) || std::isnan(hi)) fail("clip_grad_value_: clip value must not be nan");
  const T l = T(lo), h = T(hi);
  walk(tensors.size(), [&](size_t i) { return tensors[i].numel; }, kGrain,
       [&](size_t i, int64_t b, int64_t e) {
         T* __restrict x = tensors[i].data;
         for (int64_t k = b; k < e; ++k) {
           const T v = x[k];
           x[k] = v < l ? l : (v > h ? h : v);
         }
       });
}

#define KILN_OPTIM_INSTANTIATE(T)                                                          \
  template void sgd_step<T>(const char*, const std::vector<ParamSlot<T>>&,                \
                            const SgdOptions&);                                            \
  template void adagrad_step<T>(const char*, const std::vector<ParamSlot<T>>&,            \
                                const AdagradOptions&);                                    \
  template void rmsprop_step<T>(const char*, const std::vector<ParamSlot<T>>&,            \
                                const RmspropOptions&);                                    \
  template void adam_step<T>(const char*, const std::vector<ParamSlot<T>>&,               \
                             const AdamOptions&);                                          \
  template std::vector<double> tensor_norms<T>(const std::vector<Span<const T>>&, double); \
  template void scale_<T>(const std::vector<Span<T>>&, double);                            \
  template void clamp_<T>(const std::vector<Span<T>>&, double, double);
KILN_OPTIM_INSTANTIATE(float)
KILN_OPTIM_INSTANTIATE(double)
#undef KILN_OPTIM_INSTANTIATE

}  // namespace kiln
