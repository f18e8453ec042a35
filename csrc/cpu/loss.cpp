#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/activation.h"
#include "cpu/loss_terms.h"
#include "cpu/vmath.h"

namespace kiln {

using namespace loss_terms;

namespace {

// Per-element work below this many (element x class) steps runs on the caller.
constexpr int64_t kGrain = 1 << 14;
// Reductions sum fixed blocks, then the block sums in order: the same bits for
// any thread count.
constexpr int64_t kBlock = 1 << 12;

int64_t grain_for(int64_t cost) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(cost, 1));
}

template <typename F>
double blocked_sum(int64_t n, int64_t cost, F term) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(blocks), 0.0);
  parallel_for(0, blocks, grain_for(kBlock * cost), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, (b + 1) * kBlock); i < e; ++i) s += term(i);
      part[b] = s;
    }
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

// Writes the n terms (None) or their sum, divided by z for Mean, into loss.
// cost: rough work per term, to size the parallel chunks.
template <typename T, typename F>
void reduce_terms(int64_t n, int64_t cost, Reduction r, double z, T* loss, F term) {
  if (r == Reduction::None) {
    parallel_for(0, n, grain_for(cost), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) loss[i] = static_cast<T>(term(i));
    });
    return;
  }
  const double s = blocked_sum(n, cost, term);
  loss[0] = static_cast<T>(r == Reduction::Mean ? s / z : s);
}

// dL/dl_i for term i: the incoming gradient, scaled by 1/Z under Mean.
template <typename T>
class Upstream {
 public:
  Upstream(const T* dloss, Reduction r, double z)
      : g_(dloss),
        per_term_(r == Reduction::None),
        scale_(r == Reduction::None ? T(0)
                                    : static_cast<T>(r == Reduction::Mean ? dloss[0] / z
                                                                          : double(dloss[0]))) {}
  T operator()(int64_t i) const { return per_term_ ? g_[i] : scale_; }

 private:
  const T* g_;
  bool per_term_;
  T scale_;
};

// Every target must be a class in [0, C) or ignore_index: checked before any lookup.
void check_class_targets(const char* op, const int64_t* target, int64_t n, int64_t C,
                         int64_t ignore_index, bool has_ignore) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = target[i];
    if ((has_ignore && t == ignore_index) || (t >= 0 && t < C)) continue;
    fail_class_target(op, t, i, C, ignore_index, has_ignore);
  }
}

template <typename T>
void check_class_args(const char* op, ClassDims d, const ClassTargets<T>& t) {
  check_dims(op, d);
  check_smoothing(op, t.label_smoothing);
  check_class_targets(op, t.target, d.N * d.S, d.C, t.ignore_index, true);
}

template <typename T>
double class_weight(const T* w, int64_t c) {
  return w ? static_cast<double>(w[c]) : 1.0;
}

}  // namespace

void check_count(const char* op, int64_t n) {
  KILN_CHECK(n >= 0, op, ": negative element count ", n);
}

void check_dims(const char* op, ClassDims d) {
  KILN_CHECK(d.N >= 0 && d.C >= 0 && d.S >= 0, op, ": negative size in (N=", d.N, ", C=", d.C,
             ", S=", d.S, ")");
}

void check_smoothing(const char* op, double eps) {
  KILN_CHECK(eps >= 0 && eps <= 1, op, ": label_smoothing must be between 0.0 and 1.0, got ",
             eps);
}

void fail_class_target(const char* op, int64_t t, int64_t i, int64_t C, int64_t ignore_index,
                       bool has_ignore) {
  fail<ValueError>(op, ": target class index ", t, " at position ", i, " is out of range for ", C,
                   " classes (expected 0 to ", C - 1, has_ignore ? ", or ignore_index " : "",
                   has_ignore ? std::to_string(ignore_index) : std::string(), ")");
}

Reduction parse_reduction(const std::string& reduction, const char* op) {
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "none") return Reduction::None;
  fail<ValueError>(op, ": reduction must be 'mean', 'sum' or 'none', got '", reduction, "'");
}

template <typename T>
T nll_loss_forward(const T* logp, ClassDims d, const ClassTargets<T>& t, Reduction r, T* loss) {
  check_class_args("nll_loss", d, t);
  const int64_t n = d.N * d.S;
  const double eps = t.label_smoothing, smooth = d.C > 0 ? eps / d.C : 0.0;
  double z = 0;
  for (int64_t i = 0; i < n; ++i)
    if (t.target[i] != t.ignore_index) z += class_weight(t.weight, t.target[i]);
  reduce_terms(n, eps > 0 ? d.C : 1, r, z, loss, [&](int64_t i) -> double {
    const int64_t c = t.target[i];
    if (c == t.ignore_index) return 0.0;
    double l = -(1 - eps) * class_weight(t.weight, c) * logp[at(d, i, c)];
    if (eps > 0) {  // sum_k w_k logp_k, the classes S apart
      const T* lp = logp + at(d, i, 0);
      const T* w = t.weight;
      l -= smooth * (w ? vmath::lane_sum<T>(d.C, [&](int64_t k) { return w[k] * lp[k * d.S]; })
                       : vmath::lane_sum<T>(d.C, [&](int64_t k) { return lp[k * d.S]; }));
    }
    return l;
  });
  return static_cast<T>(z);
}

template <typename T>
void nll_loss_backward(const T* dloss, ClassDims d, const ClassTargets<T>& t, Reduction r, T z,
                       T* dlogp) {
  check_class_args("nll_loss_backward", d, t);
  const Upstream<T> g(dloss, r, z);
  const T eps = t.label_smoothing, smooth = d.C > 0 ? eps / T(d.C) : T(0);
  parallel_for(0, d.N * d.S, grain_for(d.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t c = t.target[i];
      const T gi = c == t.ignore_index ? T(0) : g(i);
      for (int64_t k = 0; k < d.C; ++k)
        dlogp[at(d, i, k)] = -gi * smooth * (t.weight ? t.weight[k] : T(1));
      if (c != t.ignore_index)
        dlogp[at(d, i, c)] -= gi * (1 - eps) * (t.weight ? t.weight[c] : T(1));
    }
  });
}

template <typename T>
T cross_entropy_forward(const T* x, ClassDims d, const ClassTargets<T>& t, Reduction r, T* logp,
                        T* loss) {
  check_class_args("cross_entropy", d, t);
  softmax_forward(x, logp, d.N, d.C, d.S, /*log=*/true);
  return nll_loss_forward(logp, d, t, r, loss);
}

template <typename T>
void cross_entropy_backward(const T* dloss, const T* logp, ClassDims d, const ClassTargets<T>& t,
                            Reduction r, T z, T* dx) {
  nll_loss_backward(dloss, d, t, r, z, dx);
  softmax_backward(logp, dx, dx, d.N, d.C, d.S, /*log=*/true);
}

template <typename T>
void soft_cross_entropy_forward(const T* x, const T* probs, const T* weight, ClassDims d,
                                T label_smoothing, Reduction r, T* logp, T* loss) {
  check_dims("cross_entropy", d);
  check_smoothing("cross_entropy", label_smoothing);
  softmax_forward(x, logp, d.N, d.C, d.S, /*log=*/true);
  const double eps = label_smoothing, smooth = d.C > 0 ? eps / d.C : 0.0;
  reduce_terms(d.N * d.S, d.C, r, double(d.N * d.S), loss, [&](int64_t i) -> double {
    double s = 0;
    for (int64_t k = 0; k < d.C; ++k) {
      const int64_t j = at(d, i, k);
      s += class_weight(weight, k) * ((1 - eps) * probs[j] + smooth) * logp[j];
    }
    return -s;
  });
}

template <typename T>
void soft_cross_entropy_backward(const T* dloss, const T* logp, const T* probs, const T* weight,
                                 ClassDims d, T label_smoothing, Reduction r, T* dx, T* dprobs) {
  check_dims("cross_entropy_backward", d);
  check_smoothing("cross_entropy_backward", label_smoothing);
  const Upstream<T> g(dloss, r, double(d.N * d.S));
  const T eps = label_smoothing, smooth = d.C > 0 ? eps / T(d.C) : T(0);
  parallel_for(0, d.N * d.S, grain_for(d.C), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gi = g(i);
      for (int64_t k = 0; k < d.C; ++k) {
        const int64_t j = at(d, i, k);
        const T w = weight ? weight[k] : T(1);
        dx[j] = -gi * w * ((1 - eps) * probs[j] + smooth);
        if (dprobs) dprobs[j] = -gi * (1 - eps) * w * logp[j];
      }
    }
  });
  softmax_backward(logp, dx, dx, d.N, d.C, d.S, /*log=*/true);
}

namespace {

// Z of a weighted regression loss's mean: the weights' sum, or n without weights.
template <typename T>
double regression_divisor(const T* weight, int64_t n) {
  return weight ? blocked_sum(n, 1, [&](int64_t i) { return double(weight[i]); }) : double(n);
}

}  // namespace

const char* regression_name(Regression kind) {
  switch (kind) {
    case Regression::MSE: return "mse_loss";
    case Regression::L1: return "l1_loss";
    case Regression::SmoothL1: return "smooth_l1_loss";
    case Regression::Huber: return "huber_loss";
  }
  return "regression_loss";
}

void check_regression_param(Regression kind, double param) {
  if (kind == Regression::SmoothL1)
    KILN_CHECK(param >= 0, "smooth_l1_loss: beta must be >= 0 (got ", param, ")");
  if (kind == Regression::Huber)
    KILN_CHECK(param > 0, "huber_loss: delta must be > 0 (got ", param, ")");
}

template <typename T>
void regression_loss_forward(Regression kind, const T* x, const T* y, const T* weight, int64_t n,
                             Reduction r, T* loss, T param) {
  check_count(regression_name(kind), n);
  check_regression_param(kind, double(param));
  const double z = r == Reduction::Mean ? regression_divisor(weight, n) : 1.0;
  reduce_terms(n, 1, r, z, loss, [&](int64_t i) {
    const T l = regression_term(kind, x[i] - y[i], param);
    return weight ? weight[i] * l : l;
  });
}

template <typename T>
void regression_loss_backward(Regression kind, const T* dloss, const T* x, const T* y,
                              const T* weight, int64_t n, Reduction r, T* dx, T* dy, T* dweight,
                              T param) {
  check_count(regression_name(kind), n);
  check_regression_param(kind, double(param));
  const double z = r == Reduction::Mean ? regression_divisor(weight, n) : 1.0;
  const Upstream<T> g(dloss, r, z);
  // The weighted mean sum(w l) / sum(w) also depends on w through its divisor:
  // dL/dw_i = (l_i - L) / Z, with L the loss value.
  T mean = 0;
  if (dweight && weight && r == Reduction::Mean)
    mean = static_cast<T>(blocked_sum(n, 1, [&](int64_t i) {
                            return weight[i] * regression_term(kind, x[i] - y[i], param);
                          }) /
                          z);
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T diff = x[i] - y[i];
      const T d = regression_slope(kind, diff, param);
      const T v = g(i) * (weight ? weight[i] * d : d);
      if (dx) dx[i] = v;
      if (dy) dy[i] = -v;
      if (dweight) dweight[i] = g(i) * (regression_term(kind, diff, param) - mean);
    }
  });
}

template <typename T>
void bce_with_logits_forward(const T* x, const T* y, const T* weight, const T* pos_weight,
                             int64_t n, Reduction r, T* loss) {
  check_count("binary_cross_entropy_with_logits", n);
  reduce_terms(n, 4, r, double(n), loss, [&](int64_t i) {
    const T l = bce_logits_term(x[i], y[i], pos_weight ? pos_weight[i] - T(1) : T(0));
    return weight ? weight[i] * l : l;
  });
}

template <typename T>
void bce_with_logits_backward(const T* dloss, const T* x, const T* y, const T* weight,
                              const T* pos_weight, int64_t n, Reduction r, T* dx, T* dy) {
  check_count("binary_cross_entropy_with_logits_backward", n);
  const Upstream<T> g(dloss, r, double(n));
  parallel_for(0, n, kGrain / 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gw = weight ? g(i) * weight[i] : g(i);
      const T pw1 = pos_weight ? pos_weight[i] - T(1) : T(0);
      if (dx) dx[i] = gw * bce_logits_dx(x[i], y[i], pw1);
      if (dy) dy[i] = gw * bce_logits_dy(x[i], pw1);
    }
  });
}

template <typename T>
void bce_forward(const T* x, const T* y, const T* weight, int64_t n, Reduction r, T* loss) {
  check_count("binary_cross_entropy", n);
  for (int64_t i = 0; i < n; ++i)
    if (!(x[i] >= T(0) && x[i] <= T(1))) fail_bce_input(x[i], i);
  reduce_terms(n, 4, r, double(n), loss, [&](int64_t i) {
    const T l = bce_term(x[i], y[i]);
    return weight ? weight[i] * l : l;
  });
}

template <typename T>
void bce_backward(const T* dloss, const T* x, const T* y, const T* weight, int64_t n, Reduction r,
                  T* dx, T* dy) {
  check_count("binary_cross_entropy_backward", n);
  const Upstream<T> g(dloss, r, double(n));
  parallel_for(0, n, kGrain / 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gw = weight ? g(i) * weight[i] : g(i);
      if (dx) dx[i] = gw * bce_dx(x[i], y[i]);
      if (dy) dy[i] = gw * bce_dy(x[i]);
    }
  });
}

void check_margin_sizes(const char* op, int64_t N, int64_t C, int p) {
  KILN_CHECK(N >= 0 && C >= 0, op, ": negative size in (N=", N, ", C=", C, ")");
  KILN_CHECK(p == 1 || p == 2, op, ": only p == 1 and p == 2 are supported, got p=", p);
}

namespace {

template <typename T>
void check_margin_args(const char* op, const int64_t* target, int64_t N, int64_t C, int p) {
  check_margin_sizes(op, N, C, p);
  check_class_targets(op, target, N, C, 0, false);
}

}  // namespace

template <typename T>
void multi_margin_forward(const T* x, const int64_t* target, const T* weight, int64_t N,
                          int64_t C, int p, T margin, Reduction r, T* loss) {
  check_margin_args<T>("multi_margin_loss", target, N, C, p);
  reduce_terms(N, C, r, double(N), loss, [&](int64_t n) -> double {
    const T* row = x + n * C;
    const int64_t t = target[n];
    double s = 0;
    for (int64_t c = 0; c < C; ++c) {
      if (c != t) s += margin_term(double(margin) - row[t] + row[c], p);
    }
    return s * class_weight(weight, t) / double(C);
  });
}

template <typename T>
void multi_margin_backward(const T* dloss, const T* x, const int64_t* target, const T* weight,
                           int64_t N, int64_t C, int p, T margin, Reduction r, T* dx) {
  check_margin_args<T>("multi_margin_loss_backward", target, N, C, p);
  const Upstream<T> g(dloss, r, double(N));
  parallel_for(0, N, grain_for(C), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* row = x + n * C;
      T* drow = dx + n * C;
      const int64_t t = target[n];
      const T gn = g(n) * (weight ? weight[t] : T(1)) / T(C);
      T total = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T h = margin - row[t] + row[c];
        const T v = (c != t && h > T(0)) ? gn * margin_slope(h, p) : T(0);
        drow[c] = v;
        total += v;
      }
      drow[t] = -total;
    }
  });
}

KILN_LOSS_KERNELS(float)
KILN_LOSS_KERNELS(double)

}  // namespace kiln
