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
#include "cpu/optim_math.h"

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

void check_betas(const char* op, double beta1, double beta2) {
  if (!(beta1 >= 0 && beta1 < 1))
    fail(op, ": invalid beta1 ", beta1, " (expected 0 <= beta1 < 1)");
  if (!(beta2 >= 0 && beta2 < 1))
    fail(op, ": invalid beta2 ", beta2, " (expected 0 <= beta2 < 1)");
}

// Each rule's element loop is a function of restrict pointers and a struct of
// scalars passed by value, so the compiler knows no store changes a scalar or
// another stream and vectorizes every variant. (Written inside the walk's
// lambda, with the scalars captured by reference, GCC 12 reloaded them after
// each store and left the loops scalar.) The update of one element is
// optim_math.h's, which the CUDA twins call too.

template <typename T, bool WD, bool MOM, bool NESTEROV, bool FRESH>
void sgd_loop(T* __restrict p, const T* __restrict gr, T* __restrict buf, int64_t n,
              optim::SgdScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::sgd_update<T, WD, MOM, NESTEROV, FRESH>(p, gr, buf, k, c);
}

template <typename T, bool WD>
void adagrad_loop(T* __restrict p, const T* __restrict gr, T* __restrict sum, int64_t n,
                  optim::AdagradScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::adagrad_update<T, WD>(p, gr, sum, k, c);
}

template <typename T, bool WD, bool CENTERED, bool MOM>
void rmsprop_loop(T* __restrict p, const T* __restrict gr, T* __restrict sq, T* __restrict ga,
                  T* __restrict buf, int64_t n, optim::RmspropScalars<T> c) {
  for (int64_t k = 0; k < n; ++k)
    optim::rmsprop_update<T, WD, CENTERED, MOM>(p, gr, sq, ga, buf, k, c);
}

template <typename T, int WD, bool AMSGRAD>
void adam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
               T* __restrict vmax, int64_t n, optim::AdamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::adam_update<T, WD, AMSGRAD>(p, gr, m1, m2, vmax, k, c);
}

template <typename T, bool WD>
void adadelta_loop(T* __restrict p, const T* __restrict gr, T* __restrict sq, T* __restrict acc,
                   int64_t n, optim::AdadeltaScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::adadelta_update<T, WD>(p, gr, sq, acc, k, c);
}

template <typename T, bool WD>
void adamax_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict inf,
                 int64_t n, optim::AdamaxScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::adamax_update<T, WD>(p, gr, m1, inf, k, c);
}

template <typename T, int WD>
void nadam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
                int64_t n, optim::NadamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::nadam_update<T, WD>(p, gr, m1, m2, k, c);
}

template <typename T, int WD, bool RECTIFY>
void radam_loop(T* __restrict p, const T* __restrict gr, T* __restrict m1, T* __restrict m2,
                int64_t n, optim::RadamScalars<T> c) {
  for (int64_t k = 0; k < n; ++k) optim::radam_update<T, WD, RECTIFY>(p, gr, m1, m2, k, c);
}

}  // namespace

// ------------------------------------------------------------- preparation
// The checks, the step counters and the per-slot scalars (optim_math.h), shared with
// the CUDA twins.
namespace optim {

template <typename T>
std::vector<SgdScalars<T>> sgd_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                       const SgdOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  if (!(o.momentum >= 0)) fail(op, ": invalid momentum ", o.momentum, " (expected >= 0)");
  if (!std::isfinite(o.dampening)) fail(op, ": invalid dampening ", o.dampening);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail(op, ": Nesterov momentum requires a momentum and zero dampening");
  check_slots(op, slots, {{0, "momentum_buffer", o.momentum != 0}}, false);
  const SgdScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.momentum),
                        T(1 - o.dampening), T(-o.lr)};
  return std::vector<SgdScalars<T>>(slots.size(), c);
}

template <typename T>
std::vector<AdagradScalars<T>> adagrad_prepare(const char* op,
                                               const std::vector<ParamSlot<T>>& slots,
                                               const AdagradOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.lr_decay >= 0)) fail(op, ": invalid lr_decay ", o.lr_decay, " (expected >= 0)");
  check_slots(op, slots, {{0, "sum", true}}, true);
  std::vector<AdagradScalars<T>> out;
  for (double t : advance_steps(slots))
    out.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.eps),
                   T(-(o.lr / (1 + (t - 1) * o.lr_decay)))});
  return out;
}

template <typename T>
std::vector<RmspropScalars<T>> rmsprop_prepare(const char* op,
                                               const std::vector<ParamSlot<T>>& slots,
                                               const RmspropOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.alpha >= 0)) fail(op, ": invalid alpha ", o.alpha, " (expected alpha >= 0)");
  if (!(o.momentum >= 0)) fail(op, ": invalid momentum ", o.momentum, " (expected >= 0)");
  check_slots(op, slots,
              {{0, "square_avg", true},
               {1, "grad_avg", o.centered},
               {2, "momentum_buffer", o.momentum > 0}},
              true);
  advance_steps(slots);
  const RmspropScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.eps),
                            T(o.alpha), T(1 - o.alpha), T(o.momentum), T(-o.lr),
                            Lerp<T>(1 - o.alpha)};
  return std::vector<RmspropScalars<T>>(slots.size(), c);
}

template <typename T>
std::vector<AdamScalars<T>> adam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                         const AdamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots,
              {{0, "exp_avg", true}, {1, "exp_avg_sq", true}, {2, "max_exp_avg_sq", o.amsgrad}},
              true);
  // Per slot: -lr / bias_correction1 and sqrt(bias_correction2), in double as PyTorch.
  std::vector<AdamScalars<T>> out;
  for (double t : advance_steps(slots))
    out.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2), T(1 - o.beta2),
                   T(1 - o.lr * o.weight_decay), T(o.eps),
                   T(-(o.lr / (1 - std::pow(o.beta1, t)))),
                   T(std::pow(1 - std::pow(o.beta2, t), 0.5)), Lerp<T>(1 - o.beta1)});
  return out;
}

template <typename T>
std::vector<AdadeltaScalars<T>> adadelta_prepare(const char* op,
                                                 const std::vector<ParamSlot<T>>& slots,
                                                 const AdadeltaOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  if (!(o.rho >= 0 && o.rho <= 1)) fail(op, ": invalid rho ", o.rho, " (expected 0 <= rho <= 1)");
  check_slots(op, slots, {{0, "square_avg", true}, {1, "acc_delta", true}}, true);
  advance_steps(slots);
  const AdadeltaScalars<T> c{o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.rho),
                             T(1 - o.rho), T(o.eps), T(-o.lr)};
  return std::vector<AdadeltaScalars<T>>(slots.size(), c);
}

template <typename T>
std::vector<AdamaxScalars<T>> adamax_prepare(const char* op,
                                             const std::vector<ParamSlot<T>>& slots,
                                             const AdamaxOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_inf", true}}, true);
  std::vector<AdamaxScalars<T>> out;
  for (double t : advance_steps(slots))
    out.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2), T(o.eps),
                   T(-(o.lr / (1 - std::pow(o.beta1, t)))), Lerp<T>(1 - o.beta1)});
  return out;
}

template <typename T>
std::vector<NadamScalars<T>> nadam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                           const NadamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  if (!(o.momentum_decay >= 0))
    fail(op, ": invalid momentum_decay ", o.momentum_decay, " (expected >= 0)");
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_avg_sq", true}}, true);
  for (size_t i = 0; i < slots.size(); ++i)
    if (!slots[i].mu_product) fail(op, ": slot ", i, " has no mu_product");
  const std::vector<double> steps = advance_steps(slots);
  std::vector<NadamScalars<T>> out;
  out.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const double t = steps[i];
    const double mu = o.beta1 * (1.0 - 0.5 * std::pow(0.96, t * o.momentum_decay));
    const double mu_next = o.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1) * o.momentum_decay));
    // mu_product *= mu on a float32 scalar: the factor rounded to float32 first.
    float& product = *slots[i].mu_product;
    product = product * float(mu);
    const double prod = product, prod_next = prod * mu_next;
    out.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2), T(1 - o.beta2),
                   T(1 - o.lr * o.weight_decay), T(o.eps), T(1 - std::pow(o.beta2, t)),
                   T(-o.lr * (1.0 - mu) / (1.0 - prod)),
                   T(-o.lr * mu_next / (1.0 - prod_next)), Lerp<T>(1 - o.beta1)});
  }
  return out;
}

template <typename T>
std::vector<RadamScalars<T>> radam_prepare(const char* op, const std::vector<ParamSlot<T>>& slots,
                                           const RadamOptions& o) {
  check_common(op, o.lr, o.weight_decay);
  check_eps(op, o.eps);
  check_betas(op, o.beta1, o.beta2);
  check_slots(op, slots, {{0, "exp_avg", true}, {1, "exp_avg_sq", true}}, true);
  std::vector<RadamScalars<T>> out;
  const double rho_inf = 2 / (1 - o.beta2) - 1;
  for (double t : advance_steps(slots)) {
    const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    const double rho_t = rho_inf - 2 * t * std::pow(o.beta2, t) / bc2;
    const bool rectify = rho_t > 5.0;
    const double rect = rectify ? std::pow((rho_t - 4) * (rho_t - 2) * rho_inf /
                                               ((rho_inf - 4) * (rho_inf - 2) * rho_t),
                                           0.5)
                                : 1.0;
    out.push_back({o.maximize ? T(-1) : T(1), T(o.weight_decay), T(o.beta2), T(1 - o.beta2),
                   T(1 - o.lr * o.weight_decay), T(o.eps), T(bc1), T(o.lr),
                   T(std::pow(bc2, 0.5)), T(rect), Lerp<T>(1 - o.beta1), rectify});
  }
  return out;
}

}  // namespace optim

// Entry points: prepare (check, advance the step counters, the scalars), walk the group.

template <typename T>
void sgd_step(const char* op, const std::vector<ParamSlot<T>>& slots, const SgdOptions& o) {
  const auto c = optim::sgd_prepare(op, slots, o);
  optim::sgd_variant(o, [&](auto WD, auto MOM, auto NESTEROV) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      T* buf = MOM ? s.state[0] + b : nullptr;
      if (s.fresh)
        sgd_loop<T, WD, MOM, NESTEROV, true>(s.param + b, s.grad + b, buf, e - b, c[i]);
      else
        sgd_loop<T, WD, MOM, NESTEROV, false>(s.param + b, s.grad + b, buf, e - b, c[i]);
    });
  });
}

template <typename T>
void adagrad_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const AdagradOptions& o) {
  const auto c = optim::adagrad_prepare(op, slots, o);
  optim::adagrad_variant(o, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adagrad_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, e - b, c[i]);
    });
  });
}

template <typename T>
void rmsprop_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const RmspropOptions& o) {
  const auto c = optim::rmsprop_prepare(op, slots, o);
  optim::rmsprop_variant(o, [&](auto WD, auto CENTERED, auto MOM) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      rmsprop_loop<T, WD, CENTERED, MOM>(s.param + b, s.grad + b, s.state[0] + b,
                                         CENTERED ? s.state[1] + b : nullptr,
                                         MOM ? s.state[2] + b : nullptr, e - b, c[i]);
    });
  });
}

template <typename T>
void adam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamOptions& o) {
  const auto c = optim::adam_prepare(op, slots, o);
  optim::adam_variant(o, [&](auto WD, auto AMSGRAD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adam_loop<T, WD, AMSGRAD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b,
                                AMSGRAD ? s.state[2] + b : nullptr, e - b, c[i]);
    });
  });
}

template <typename T>
void adadelta_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                   const AdadeltaOptions& o) {
  const auto c = optim::adadelta_prepare(op, slots, o);
  optim::adadelta_variant(o, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adadelta_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b, c[i]);
    });
  });
}

template <typename T>
void adamax_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamaxOptions& o) {
  const auto c = optim::adamax_prepare(op, slots, o);
  optim::adamax_variant(o, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      adamax_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b, c[i]);
    });
  });
}

template <typename T>
void nadam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const NadamOptions& o) {
  const auto c = optim::nadam_prepare(op, slots, o);
  optim::nadam_variant(o, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      nadam_loop<T, WD>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b, c[i]);
    });
  });
}

template <typename T>
void radam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const RadamOptions& o) {
  const auto c = optim::radam_prepare(op, slots, o);
  optim::radam_variant(o, [&](auto WD) {
    walk_slots(slots, [&](size_t i, int64_t b, int64_t e) {
      const ParamSlot<T>& s = slots[i];
      if (c[i].rectify)
        radam_loop<T, WD, true>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b,
                                c[i]);
      else
        radam_loop<T, WD, false>(s.param + b, s.grad + b, s.state[0] + b, s.state[1] + b, e - b,
                                 c[i]);
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
  template std::vector<double> tensor_norms<T>(const std::vector<Span<const T>>&, double); \
  template void scale_<T>(const std::vector<Span<T>>&, double);                            \
  template void clamp_<T>(const std::vector<Span<T>>&, double, double);                  \
  template std::vector<optim::SgdScalars<T>> optim::sgd_prepare<T>(                        \
      const char*, const std::vector<ParamSlot<T>>&, const SgdOptions&);                   \
  template std::vector<optim::AdagradScalars<T>> optim::adagrad_prepare<T>(                \
      const char*, const std::vector<ParamSlot<T>>&, const AdagradOptions&);               \
  template std::vector<optim::RmspropScalars<T>> optim::rmsprop_prepare<T>(                \
      const char*, const std::vector<ParamSlot<T>>&, const RmspropOptions&);               \
  template std::vector<optim::AdamScalars<T>> optim::adam_prepare<T>(                      \
      const char*, const std::vector<ParamSlot<T>>&, const AdamOptions&);                  \
  template std::vector<optim::AdadeltaScalars<T>> optim::adadelta_prepare<T>(              \
      const char*, const std::vector<ParamSlot<T>>&, const AdadeltaOptions&);              \
  template std::vector<optim::AdamaxScalars<T>> optim::adamax_prepare<T>(                  \
      const char*, const std::vector<ParamSlot<T>>&, const AdamaxOptions&);                \
  template std::vector<optim::NadamScalars<T>> optim::nadam_prepare<T>(                    \
      const char*, const std::vector<ParamSlot<T>>&, const NadamOptions&);                 \
  template std::vector<optim::RadamScalars<T>> optim::radam_prepare<T>(                    \
      const char*, const std::vector<ParamSlot<T>>&, const RadamOptions&);
KILN_OPTIM_INSTANTIATE(float)
KILN_OPTIM_INSTANTIATE(double)
#undef KILN_OPTIM_INSTANTIATE
KILN_OPTIM_RULES(KILN_OPTIM_INSTANTIATE_STEP, float)
KILN_OPTIM_RULES(KILN_OPTIM_INSTANTIATE_STEP, double)

}  // namespace kiln
