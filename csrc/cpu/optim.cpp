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

// torch.maximum: NaN if either is NaN (a > b is false when b is NaN, so b wins).
template <typename T>
inline T nan_max(T a, T b) {
  const T hi = a > b ? a : b;
  return a != a ? a : hi;
}

// The sign of lr is checked when the optimizer is built, as PyTorch does: a
// schedule may round to a tiny negative lr (LinearLR down to 0 gives -2.5e-19).
void check_common(const char* op, double lr, double weight_decay) {
  if (!std::isfinite(lr)) fail(op, ": invalid learning rate ", lr, " (expected a finite lr)");
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

// Each rule's element loop is a function of restrict pointers and a struct of
// scalars passed by value, so the compiler knows no store changes a scalar or
// another stream and vectorizes every variant. (Written inside the walk's
// lambda, with the scalars captured by reference, GCC 12 reloaded them after
// each store and left the loops scalar.)

// torch.lerp(from, to, w) as ATen's vectorized kernel computes it: one fma,
// from `from` when |w| < 0.5, else from `to`.
template <typename T>
struct Lerp {
  T coef;
  // 1 when the lerp starts from `from`, 0 from `to`: a float, because GCC 12
  // vectorizes a select on a float comparison but not on a scalar bool.
  T from_start;
  explicit Lerp(double w)
      : coef(std::abs(w) < 0.5 ? T(w) : T(w) - T(1)), from_start(std::abs(w) < 0.5 ? 1 : 0) {}
  T operator()(T from, T to) const {
    return std::fma(coef, to - from, from_start > T(0) ? from : to);
  }
};

// ----------------------------------------------------------------------- SGD
template <typename T>
struct SgdScalars {
  T sign, wd, mom, keep, neg_lr;
};

template <typename T, bool WD, bool MOM, bool NESTEROV, bool FRESH>
void sgd_loop(T* __restrict p, const T* __restrict gr, T* __restrict buf, int64_t n,
              SgdScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
    T g = c.sign * gr[k];
    if constexpr (WD) g = std::fma(c.wd, p[k], g);
    if constexpr (MOM) {
      const T m = FRESH ? g : std::fma(c.keep, g, buf[k] * c.mom);
      buf[k] = m;
      g = NESTEROV ? std::fma(c.mom, m, g) : m;
    }
    p[k] = std::fma(c.neg_lr, g, p[k]);
  }
}

// ------------------------------------------------------------------- Adagrad
template <typename T>
struct AdagradScalars {
  T sign, wd, eps, neg_clr;
};

template <typename T, bool WD>
void adagrad_loop(T* __restrict p, const T* __restrict gr, T* __restrict sum, int64_t n,
                  AdagradScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
    T g = c.sign * gr[k];
    if constexpr (WD) g = std::fma(c.wd, p[k], g);
    const T acc = std::fma(g, g, sum[k]);
    sum[k] = acc;
    p[k] += c.neg_clr * g / (std::sqrt(acc) + c.eps);
  }
}

// ------------------------------------------------------------------- RMSprop
template <typename T>
struct RmspropScalars {
  T sign, wd, eps, alpha, rest, mom, neg_lr;
  Lerp<T> lerp;
};

template <typename T, bool WD, bool CENTERED, bool MOM>
void rmsprop_loop(T* __restrict p, const T* __restrict gr, T* __restrict sq, T* __restrict ga,
                  T* __restrict buf, int64_t n, RmspropScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
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
}

// ---------------------------------------------------------------------- Adam
template <typename T>
struct AdamScalars {
  T sign, wd, beta2, rest2, shrink, eps, neg_step, bc2_sqrt;
  Lerp<T> lerp;
};

// WD: 0 none, 1 L2 added to the gradient (Adam), 2 decoupled (AdamW).
template <typename T, int WD, bool AMSGRAD>
void adam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
               T* __restrict vmax, int64_t n, AdamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
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
}

// ------------------------------------------------------------------ Adadelta
template <typename T>
struct AdadeltaScalars {
  T sign, wd, rho, rest, eps, neg_lr;
};

template <typename T, bool WD>
void adadelta_loop(T* __restrict p, const T* __restrict gr, T* __restrict sq, T* __restrict acc,
                   int64_t n, AdadeltaScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
    T g = c.sign * gr[k];
    if constexpr (WD) g = std::fma(c.wd, p[k], g);
    const T v = std::fma(c.rest * g, g, sq[k] * c.rho);
    sq[k] = v;
    const T d = std::sqrt(acc[k] + c.eps) / std::sqrt(v + c.eps) * g;
    acc[k] = std::fma(c.rest * d, d, acc[k] * c.rho);
    p[k] = std::fma(c.neg_lr, d, p[k]);
  }
}

// -------------------------------------------------------------------- Adamax
template <typename T>
struct AdamaxScalars {
  T sign, wd, beta2, eps, neg_clr;
  Lerp<T> lerp;
};

template <typename T, bool WD>
void adamax_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict inf,
                 int64_t n, AdamaxScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
    T g = c.sign * gr[k];
    if constexpr (WD) g = std::fma(c.wd, p[k], g);
    const T m = c.lerp(m1[k], g);
    m1[k] = m;
    const T u = nan_max(inf[k] * c.beta2, std::abs(g) + c.eps);
    inf[k] = u;
    p[k] += c.neg_clr * m / u;
  }
}

// --------------------------------------------------------------------- NAdam
template <typename T>
struct NadamScalars {
  T sign, wd, beta2, rest2, shrink, eps, bc2, neg_grad_step, neg_avg_step;
  Lerp<T> lerp;
};

// WD: 0 none, 1 L2 added to the gradient, 2 decoupled.
template <typename T, int WD>
void nadam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
                int64_t n, NadamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
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
}

// --------------------------------------------------------------------- RAdam
template <typename T>
struct RadamScalars {
  T sign, wd, beta2, rest2, shrink, eps, bc1, lr, bc2_sqrt, rect;
  Lerp<T> lerp;
};

template <typename T, int WD, bool RECTIFY>
void radam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
                int64_t n, RadamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) {
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
}

// 0 without weight decay, 1 for L2 added to the gradient, 2 for decoupled decay.
template <typename F>
void with_decay(double weight_decay, bool decoupled, F&& f) {
  if (weight_decay == 0) f(std::integral_constant<int, 0>{});
  else if (!decoupled) f(std::integral_constant<int, 1>{});
  else f(std::integral_constant<int, 2>{});
}

void check_betas(const char* op, double beta1, double beta2) {
  if (!(beta1 >= 0 && beta1 < 1))
    fail(op, ": invalid beta1 ", beta1, " (expected 0 <= beta1 < 1)");
  if (!(beta2 >= 0 && beta2 < 1))
    fail(op, ": invalid beta2 ", beta2, " (expected 0 <= beta2 < 1)");
}

}  // namespace

// Entry points: validate everything, advance the step counters, walk the group.

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
  const SgdScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.momentum),
                        T(1 - o.dampening), T(-o.lr)};
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(momentum, [&](auto MOM) {
      with_flag(o.nesterov, [&](auto NESTEROV) {
        walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
          const ParamSlot<T>& s = slots[i];
          T* buf = MOM ? s.state[0] + b : nullptr;
          if (s.fresh) sgd_loop<T, WD, MOM, NESTEROV, true>(s.param + b, s.grad + b, buf, e - b, c);
          else sgd_loop<T, WD, MOM, NESTEROV, false>(s.param + b, s.grad + b, buf, e - b, c);
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
  with_flag(o.weight_decay != 0, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      const AdagradScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.eps),
                                T(-(o.lr / (1 + (steps[i] - 1) * o.lr_decay)))};
      adagrad_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, e - b, c);
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
  const RmspropScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.eps),
                            T(o.alpha), T(1 - o.alpha), T(o.momentum), T(-o.lr),
                            Lerp<T>(1 - o.alpha)};
  with_flag(o.weight_decay != 0, [&](auto WD) {
    with_flag(o.centered, [&](auto CENTERED) {
      with_flag(momentum, [&](auto MOM) {
        walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
          const ParamSlot<T>& s = slots[i];
          rmsprop_loop<T, WD, CENTERED, MOM>(s.param + b, s.grad + b, s.state[0] + b,
                                             CENTERED ? s.state[1] + b : nullptr,
                                             MOM ? s.state[2] + b : nullptr, e - b, c);
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
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots,
              {{0, "exp_avg", true}, {1, "exp_avg_sq", true}, {2, "max_exp_avg_sq", o.amsgrad}},
              true);
  const std::vector<double> steps = advance_steps(slots);
  const AdamScalars<T> base{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2),
                            T(1 - o.beta2), T(1 - o.lr * o.weight_decay), T(o.eps), T(0), T(1),
                            Lerp<T>(1 - o.beta1)};
  // Per slot: -lr / bias_correction1 and sqrt(bias_correction2), in double as PyTorch.
  std::vector<AdamScalars<T>> per_slot(slots.size(), base);
  for (size_t i = 0; i < slots.size(); ++i) {
    per_slot[i].neg_step = T(-(o.lr / (1 - std::pow(o.beta1, steps[i]))));
    per_slot[i].bc2_sqrt = T(std::pow(1 - std::pow(o.beta2, steps[i]), 0.5));
  }
  auto run = [&](auto WD, auto AMSGRAD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adam_loop<T, WD, AMSGRAD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b,
                                AMSGRAD ? s.state[2] + b : nullptr, e - b, per_slot[i]);
    });
  };
  with_flag(o.amsgrad, [&](auto AMSGRAD) {
    with_decay(o.weight_decay, o.decoupled_weight_decay, [&](auto WD) { run(WD, AMSGRAD); });
  });
}

// ------------------------------------------------------------------ Adadelta
template <typename T>
void adadelta_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                   const AdadeltaOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.rho >= 0 && o.rho <= 1)) fail(op, ": invalid rho ", o.rho, " (expected 0 <= rho <= 1)");
  check_slots(op, slots, {{0, "square_avg", true}, {1, "acc_delta", true}}, true);
  advance_steps(slots);
  const AdadeltaScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.rho),
                             T(1 - o.rho), T(o.eps), T(-o.lr)};
  with_flag(o.weight_decay != 0, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adadelta_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b, c);
    });
  });
}

// -------------------------------------------------------------------- Adamax
template <typename T>
void adamax_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamaxOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_inf", true}}, true);
  const std::vector<double> steps = advance_steps(slots);
  with_flag(o.weight_decay != 0, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      const AdamaxScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2),
                               T(o.eps), T(-(o.lr / (1 - std::pow(o.beta1, steps[i])))),
                               Lerp<T>(1 - o.beta1)};
      adamax_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b, c);
    });
  });
}

// --------------------------------------------------------------------- NAdam
template <typename T>
void nadam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const NadamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  if (!(o.momentum_decay >= 0))
    fail(op, ": invalid momentum_decay ", o.momentum_decay, " (expected >= 0)");
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_avg_sq", true}}, true);
  for (size_t i = 0; i < slots.size(); ++i)
    if (!slots[i].mu_product) fail(op, ": slot ", i, " has no mu_product");
  const std::vector<double> steps = advance_steps(slots);
  std::vector<NadamScalars<T>> per_slot;
  per_slot.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const double t = steps[i];
    const double mu = o.beta1 * (1.0 - 0.5 * std::pow(0.96, t * o.momentum_decay));
    const double mu_next = o.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1) * o.momentum_decay));
    // mu_product *= mu on a float32 scalar: the factor rounded to float32 first.
    float& product = *slots[i].mu_product;
    product = product * float(mu);
    const double prod = product, prod_next = prod * mu_next;
    per_slot.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2),
                        T(1 - o.beta2), T(1 - o.lr * o.weight_decay), T(o.eps),
                        T(1 - std::pow(o.beta2, t)), T(-o.lr * (1.0 - mu) / (1.0 - prod)),
                        T(-o.lr * mu_next / (1.0 - prod_next)), Lerp<T>(1 - o.beta1)});
  }
  with_decay(o.weight_decay, o.decoupled_weight_decay, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      nadam_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b,
                        per_slot[i]);
    });
  });
}

// --------------------------------------------------------------------- RAdam
template <typename T>
void radam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const RadamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_avg_sq", true}}, true);
  const std::vector<double> steps = advance_steps(slots);
  std::vector<RadamScalars<T>> per_slot;
  std::vector<bool> rectify;
  per_slot.reserve(slots.size());
  const double rho_inf = 2 / (1 - o.beta2) - 1;
  for (size_t i = 0; i < slots.size(); ++i) {
    const double t = steps[i];
    const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    const double rho_t = rho_inf - 2 * t * std::pow(o.beta2, t) / bc2;
    rectify.push_back(rho_t > 5.0);
    const double rect = rho_t > 5.0 ? std::pow((rho_t - 4) * (rho_t - 2) * rho_inf /
                                                   ((rho_inf - 4) * (rho_inf - 2) * rho_t),
                                               0.5)
                                    : 1.0;
    per_slot.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2),
                        T(1 - o.beta2), T(1 - o.lr * o.weight_decay), T(o.eps), T(bc1), T(o.lr),
                        T(std::pow(bc2, 0.5)), T(rect), Lerp<T>(1 - o.beta1)});
  }
  with_decay(o.weight_decay, o.decoupled_weight_decay, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      if (rectify[i])
        radam_loop<T, WD, true>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b,
                                per_slot[i]);
      else
        radam_loop<T, WD, false>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b,
                                 per_slot[i]);
    });
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

// sum of term(x_i): lanes in T over runs of 16 values each (a float lane's
// rounding error stays ~16 ulp), runs added in double. Float lanes are twice as
// wide as double ones, so the common norms (q = 2, 1) keep up with memory.
// One register of lanes: GCC 12 keeps it in a register (two spill to the stack).
template <typename T, typename F>
double run_sum(const T* x, int64_t n, F term) {
  constexpr int kLanes = 64 / sizeof(T);
  constexpr int64_t kRun = 16 * kLanes;
  double total = 0;
  for (int64_t b = 0; b < n; b += kRun) {
    const int64_t e = std::min(n, b + kRun);
    T acc[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += term(x[i + j]);
    for (int j = 0; i + j < e; ++j) acc[j] += term(x[i + j]);
    double run = 0;
    for (int j = 0; j < kLanes; ++j) run += acc[j];
    total += run;
  }
  return total;
}

// sum of |x|^q (q = 0: count of nonzeros) over n values.
template <typename T>
double power_sum(const T* x, int64_t n, double q) {
  if (q == 2) return run_sum(x, n, [](T v) { return v * v; });
  if (q == 1) return run_sum(x, n, [](T v) { return std::abs(v); });
  if (q == 0) return lane_sum(n, [&](int64_t i) { return x[i] != T(0) ? 1.0 : 0.0; });
  return lane_sum(n, [&](int64_t i) { return std::pow(std::abs(double(x[i])), q); });
}

// The q-norm from a power sum (or from the extreme for q = +-inf).
double finish_norm(double acc, double q) {
  if (is_pos_inf(q) || is_neg_inf(q) || q == 0 || q == 1) return acc;
  if (q == 2) return std::sqrt(acc);
  return std::pow(acc, 1 / q);
}

}  // namespace

void check_norm_type(double q) {
  if (std::isnan(q)) fail("clip_grad_norm_: norm_type must be a number, got nan");
}

void check_clamp_bounds(double lo, double hi) {
  if (std::isnan(lo) || std::isnan(hi)) fail("clip_grad_value_: clip value must not be nan");
}

NormBlocks norm_blocks(const std::vector<int64_t>& numels) {
  NormBlocks blocks;
  for (size_t i = 0; i < numels.size(); ++i) {
    if (numels[i] < 0) fail("clip_grad_norm_: tensor ", i, " has a negative size");
    for (int64_t b = 0; b < numels[i]; b += kNormBlock) {
      blocks.owner.push_back(i);
      blocks.first.push_back(b);
    }
  }
  return blocks;
}

std::vector<double> combine_norm_partials(const NormBlocks& blocks,
                                          const std::vector<double>& partial, size_t count,
                                          double q) {
  const bool extreme = is_pos_inf(q) || is_neg_inf(q);
  std::vector<double> norms(count, is_neg_inf(q) ? std::numeric_limits<double>::infinity() : 0.0);
  for (size_t k = 0; k < blocks.owner.size(); ++k) {
    double& acc = norms[blocks.owner[k]];
    const double v = partial[k];
    if (!extreme) acc += v;
    else if (std::isnan(v) || std::isnan(acc)) acc = acc + v;
    else acc = is_pos_inf(q) ? std::max(acc, v) : std::min(acc, v);
  }
  for (double& v : norms) v = finish_norm(v, q);
  return norms;
}

template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q) {
  const NormBlocks blocks = norm_blocks_of(tensors, q);
  const bool extreme = is_pos_inf(q) || is_neg_inf(q);
  std::vector<double> partial(blocks.owner.size());
  parallel_for(0, static_cast<int64_t>(blocks.owner.size()),
               std::max<int64_t>(1, kGrain / kNormBlock), [&](int64_t b0, int64_t b1) {
                 for (int64_t k = b0; k < b1; ++k) {
                   const Span<const T>& t = tensors[blocks.owner[k]];
                   const T* x = t.data + blocks.first[k];
                   const int64_t n = std::min(kNormBlock, t.numel - blocks.first[k]);
                   partial[k] = extreme ? abs_extreme(x, n, is_pos_inf(q)) : power_sum(x, n, q);
                 }
               });
  return combine_norm_partials(blocks, partial, tensors.size(), q);
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
  check_clamp_bounds(lo, hi);
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
  template void adadelta_step<T>(const char*, const std::vector<ParamSlot<T>>&,           \
                                 const AdadeltaOptions&);                                  \
  template void adamax_step<T>(const char*, const std::vector<ParamSlot<T>>&,             \
                               const AdamaxOptions&);                                      \
  template void nadam_step<T>(const char*, const std::vector<ParamSlot<T>>&,              \
                              const NadamOptions&);                                        \
  template void radam_step<T>(const char*, const std::vector<ParamSlot<T>>&,              \
                              const RadamOptions&);                                        \
  template std::vector<double> tensor_norms<T>(const std::vector<Span<const T>>&, double); \
  template void scale_<T>(const std::vector<Span<T>>&, double);                            \
  template void clamp_<T>(const std::vector<Span<T>>&, double, double);
KILN_OPTIM_INSTANTIATE(float)
KILN_OPTIM_INSTANTIATE(double)
#undef KILN_OPTIM_INSTANTIATE

}  // namespace kiln
