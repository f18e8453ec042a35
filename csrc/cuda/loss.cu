// Losses on the GPU (cuda/loss.h). Each loss is a term functor (one term per
// element, position or row, cpu/loss_terms.h's formulas) handed to one reduction,
// and a backward kernel with one thread per element (per position or row where a
// term spans the classes).
#include "cuda/loss.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>

#include "common/check.h"
#include "cpu/loss_terms.h"
#include "cuda/activation.h"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

using namespace kiln::loss_terms;

constexpr int64_t kNone = INT64_MAX;  // "no bad index" of the index checks

struct Min {
  template <typename V>
  __device__ V operator()(V a, V b) const { return b < a ? b : a; }
};

// Device scratch memory for one call; back to the cache when it leaves scope, which is
// safe at once because every later user of the block runs after it on the same stream
// (inside a capture the block comes from, and returns to, the graph's private pool).
class Scratch {
 public:
  explicit Scratch(size_t bytes) : device_(current_device()), p_(device_malloc(bytes, device_)) {}
  ~Scratch() { device_free(p_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename V>
  V* as() const { return static_cast<V*>(p_); }

 private:
  int device_;
  void* p_;
};

cudaStream_t current_stream() { return stream(current_device()); }

// Waits for the stream and returns *p.
template <typename V>
V read_back(const V* p) {
  V v;
  cudaStream_t s = current_stream();
  KILN_CUDA_CHECK(cudaMemcpyAsync(&v, p, sizeof(V), cudaMemcpyDeviceToHost, s));
  KILN_CUDA_CHECK(cudaStreamSynchronize(s));
  return v;
}

template <typename Acc, typename Op, typename Term>
__global__ void reduce_partials(Term term, int64_t n, Acc identity, Acc* partial) {
  Acc s = identity;
  for (int64_t i = first_index(); i < n; i += grid_stride()) s = Op{}(s, Acc(term(i)));
  s = block_reduce(s, Op{});
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <typename Acc, typename Op>
__global__ void reduce_final(const Acc* partial, unsigned count, Acc identity, Acc* out) {
  Acc s = identity;
  for (unsigned c = threadIdx.x; c < count; c += blockDim.x) s = Op{}(s, partial[c]);
  s = block_reduce(s, Op{});
  if (threadIdx.x == 0) *out = s;
}

// *out = op over term(0 .. n-1), in a fixed order (the grid depends on n only).
template <typename Acc, typename Op, typename Term>
void reduce_into(const Term& term, int64_t n, Acc identity, Acc* out) {
  cudaStream_t s = current_stream();
  const unsigned blocks = std::min<unsigned>(grid_for(n), kThreads);
  Scratch partial(blocks * sizeof(Acc));
  reduce_partials<Acc, Op><<<blocks, kThreads, 0, s>>>(term, n, identity, partial.as<Acc>());
  KILN_CUDA_CHECK_LAUNCH();
  reduce_final<Acc, Op><<<1, kThreads, 0, s>>>(partial.as<Acc>(), blocks, identity, out);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T, typename Term>
__global__ void write_terms(Term term, int64_t n, T* loss) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) loss[i] = static_cast<T>(term(i));
}

// loss[0] = sum, or sum / Z for the mean (Z from *z_dev when given, else z).
template <typename T>
__global__ void write_total(const double* sum, const double* z_dev, double z, Reduction r,
                            T* loss) {
  loss[0] = static_cast<T>(r == Reduction::Mean ? *sum / (z_dev ? *z_dev : z) : *sum);
}

// The n terms (None) or their reduction into loss: cpu/loss.cpp's reduce_terms.
template <typename T, typename Term>
void reduce_terms(const Term& term, int64_t n, Reduction r, const double* z_dev, double z,
                  T* loss) {
  cudaStream_t s = current_stream();
  if (r == Reduction::None) {
    if (n == 0) return;
    write_terms<<<grid_for(n), kThreads, 0, s>>>(term, n, loss);
    KILN_CUDA_CHECK_LAUNCH();
    return;
  }
  Scratch sum(sizeof(double));
  reduce_into<double, Add>(term, n, 0.0, sum.as<double>());
  write_total<<<1, 1, 0, s>>>(sum.as<double>(), z_dev, z, r, loss);
  KILN_CUDA_CHECK_LAUNCH();
}

// dL/dl_i: the incoming gradient, or its one value (divided by Z for the mean).
template <typename T>
struct Upstream {
  const T* g;
  Reduction r;
  double z;
  const double* z_dev;  // Z on the device, or null for z
  __device__ T operator()(int64_t i) const {
    if (r == Reduction::None) return g[i];
    return r == Reduction::Mean ? static_cast<T>(double(g[0]) / (z_dev ? *z_dev : z)) : g[0];
  }
};

template <typename T>
__device__ T weight_or_one(const T* w, int64_t i) {
  return w ? w[i] : T(1);
}

// ---- class losses

__device__ inline bool valid_class(int64_t c, int64_t C) { return c >= 0 && c < C; }

// i when target i is neither a class nor (with has_ignore) ignore_index, else kNone.
struct BadTarget {
  const int64_t* target;
  int64_t C, ignore_index;
  bool has_ignore;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t c = target[i];
    return (has_ignore && c == ignore_index) || valid_class(c, C) ? kNone : i;
  }
};

// A position found bad on the device: *bad (kNone: none), filled by the kernels queued
// before. Its owner runs fail(i) for a bad i after waiting for them: at once when the
// stream runs eagerly; inside a capture (no waiting allowed) after each replay of the
// graph, through runtime.h's deferred checks, which keep the slot alive.
class BadPosition {
 public:
  BadPosition() : device_(current_device()), slot_(device_slot(sizeof(int64_t), device_)) {}
  int64_t* get() const { return static_cast<int64_t*>(slot_.get()); }

  template <typename Fail>
  void check(Fail fail) const {
    auto verify = [slot = slot_, fail] {
      const int64_t i = read_back(static_cast<const int64_t*>(slot.get()));
      if (i != kNone) fail(i);
    };
    if (capturing(device_))
      defer_check(device_, DeferredCheck{slot_, verify});
    else
      verify();
  }

 private:
  int device_;
  std::shared_ptr<void> slot_;
};

// Throws the CPU's ValueError when bad names a position (see BadPosition).
void check_bad_target(const char* op, const BadPosition& bad, const int64_t* target, int64_t C,
                      int64_t ignore_index, bool has_ignore) {
  bad.check([=](int64_t i) {
    fail_class_target(op, read_back(target + i), i, C, ignore_index, has_ignore);
  });
}

template <typename T>
struct TargetWeight {  // Z's term: w[t_i] for the counted positions
  const int64_t* target;
  const T* weight;
  int64_t C, ignore_index;
  __device__ double operator()(int64_t i) const {
    const int64_t c = target[i];
    return c != ignore_index && valid_class(c, C) ? double(weight_or_one(weight, c)) : 0.0;
  }
};

template <typename T>
struct NllTerm {
  const T* logp;
  ClassDims d;
  const int64_t* target;
  const T* weight;
  int64_t ignore_index;
  double eps, smooth;
  __device__ double operator()(int64_t i) const {
    const int64_t c = target[i];
    if (c == ignore_index || !valid_class(c, d.C)) return 0.0;
    double l = -(1 - eps) * double(weight_or_one(weight, c)) * logp[at(d, i, c)];
    if (eps > 0) {
      double s = 0;
      for (int64_t k = 0; k < d.C; ++k) s += double(weight_or_one(weight, k) * logp[at(d, i, k)]);
      l -= smooth * s;
    }
    return l;
  }
};

// *z = Z, the mean's divisor: the summed weights of the counted positions.
template <typename T>
void total_weight_into(ClassDims d, const ClassTargets<T>& t, double* z) {
  reduce_into<double, Add>(TargetWeight<T>{t.target, t.weight, d.C, t.ignore_index}, d.N * d.S,
                           0.0, z);
}

template <typename T>
T nll_forward(const char* op, const T* logp, ClassDims d, const ClassTargets<T>& t, Reduction r,
              T* loss) {
  const int64_t n = d.N * d.S;
  const double eps = t.label_smoothing, smooth = d.C > 0 ? eps / d.C : 0.0;
  Scratch z(sizeof(double));
  BadPosition bad;
  reduce_into<int64_t, Min>(BadTarget{t.target, d.C, t.ignore_index, true}, n, kNone, bad.get());
  total_weight_into(d, t, z.as<double>());
  reduce_terms(NllTerm<T>{logp, d, t.target, t.weight, t.ignore_index, eps, smooth}, n, r,
               z.as<double>(), 0.0, loss);
  check_bad_target(op, bad, t.target, d.C, t.ignore_index, true);
  // Inside a capture Z stays on the device (the backward computes it again there).
  if (capturing(current_device())) return std::numeric_limits<T>::quiet_NaN();
  return static_cast<T>(read_back(z.as<double>()));
}

// One thread per position i: dlogp_ik = -g_i q_ik.
template <typename T>
__global__ void nll_backward_kernel(Upstream<T> g, ClassDims d, const int64_t* target,
                                    const T* weight, int64_t ignore_index, T eps, T smooth,
                                    T* dlogp) {
  for (int64_t i = first_index(); i < d.N * d.S; i += grid_stride()) {
    const int64_t c = target[i];
    const bool counted = c != ignore_index && valid_class(c, d.C);
    const T gi = counted ? g(i) : T(0);
    for (int64_t k = 0; k < d.C; ++k) dlogp[at(d, i, k)] = -gi * smooth * weight_or_one(weight, k);
    if (counted) dlogp[at(d, i, c)] -= gi * (1 - eps) * weight_or_one(weight, c);
  }
}

template <typename T>
struct SoftTerm {
  const T* logp;
  const T* probs;
  const T* weight;
  ClassDims d;
  double eps, smooth;
  __device__ double operator()(int64_t i) const {
    double s = 0;
    for (int64_t k = 0; k < d.C; ++k) {
      const int64_t j = at(d, i, k);
      s += double(weight_or_one(weight, k)) * ((1 - eps) * probs[j] + smooth) * logp[j];
    }
    return -s;
  }
};

template <typename T>
__global__ void soft_backward_kernel(Upstream<T> g, const T* logp, const T* probs,
                                     const T* weight, ClassDims d, T eps, T smooth, T* dx,
                                     T* dprobs) {
  for (int64_t i = first_index(); i < d.N * d.S; i += grid_stride()) {
    const T gi = g(i);
    for (int64_t k = 0; k < d.C; ++k) {
      const int64_t j = at(d, i, k);
      const T w = weight_or_one(weight, k);
      dx[j] = -gi * w * ((1 - eps) * probs[j] + smooth);
      if (dprobs) dprobs[j] = -gi * (1 - eps) * w * logp[j];
    }
  }
}

}  // namespace

template <typename T>
T nll_loss_forward(const T* logp, ClassDims d, const ClassTargets<T>& t, Reduction r, T* loss) {
  check_dims("nll_loss", d);
  check_smoothing("nll_loss", t.label_smoothing);
  return nll_forward("nll_loss", logp, d, t, r, loss);
}

template <typename T>
void nll_loss_backward(const T* dloss, ClassDims d, const ClassTargets<T>& t, Reduction r, T z,
                       T* dlogp) {
  check_dims("nll_loss_backward", d);
  check_smoothing("nll_loss_backward", t.label_smoothing);
  const int64_t n = d.N * d.S;
  if (n == 0 || d.C == 0) return;
  const T eps = t.label_smoothing, smooth = d.C > 0 ? eps / T(d.C) : T(0);
  // Inside a capture the forward could not hand Z to the host: the mean's divisor is
  // computed again on the device (the same reduction, so the same value).
  std::optional<Scratch> z_slot;
  if (r == Reduction::Mean && capturing(current_device())) {
    z_slot.emplace(sizeof(double));
    total_weight_into(d, t, z_slot->as<double>());
  }
  nll_backward_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, double(z), z_slot ? z_slot->as<double>() : nullptr}, d, t.target,
      t.weight, t.ignore_index, eps, smooth, dlogp);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
T cross_entropy_forward(const T* x, ClassDims d, const ClassTargets<T>& t, Reduction r, T* logp,
                        T* loss) {
  check_dims("cross_entropy", d);
  check_smoothing("cross_entropy", t.label_smoothing);
  softmax_forward(x, logp, d.N, d.C, d.S, /*log=*/true);
  return nll_forward("cross_entropy", logp, d, t, r, loss);
}

template <typename T>
void cross_entropy_backward(const T* dloss, const T* logp, ClassDims d, const ClassTargets<T>& t,
                            Reduction r, T z, T* dx) {
  cuda::nll_loss_backward(dloss, d, t, r, z, dx);
  softmax_backward(logp, dx, dx, d.N, d.C, d.S, /*log=*/true);
}

template <typename T>
void soft_cross_entropy_forward(const T* x, const T* probs, const T* weight, ClassDims d,
                                T label_smoothing, Reduction r, T* logp, T* loss) {
  check_dims("cross_entropy", d);
  check_smoothing("cross_entropy", label_smoothing);
  softmax_forward(x, logp, d.N, d.C, d.S, /*log=*/true);
  const double eps = label_smoothing, smooth = d.C > 0 ? eps / d.C : 0.0;
  reduce_terms(SoftTerm<T>{logp, probs, weight, d, eps, smooth}, d.N * d.S, r, nullptr,
               double(d.N * d.S), loss);
}

template <typename T>
void soft_cross_entropy_backward(const T* dloss, const T* logp, const T* probs, const T* weight,
                                 ClassDims d, T label_smoothing, Reduction r, T* dx, T* dprobs) {
  check_dims("cross_entropy_backward", d);
  check_smoothing("cross_entropy_backward", label_smoothing);
  const int64_t n = d.N * d.S;
  if (n == 0 || d.C == 0) return;
  const T eps = label_smoothing, smooth = eps / T(d.C);
  soft_backward_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, double(n), nullptr}, logp, probs, weight, d, eps, smooth, dx, dprobs);
  KILN_CUDA_CHECK_LAUNCH();
  softmax_backward(logp, dx, dx, d.N, d.C, d.S, /*log=*/true);
}

// ---- regression losses

namespace {

template <typename T>
struct WeightTerm {
  const T* weight;
  __device__ double operator()(int64_t i) const { return double(weight[i]); }
};

template <typename T>
struct RegressionTerm {
  Regression kind;
  const T* x;
  const T* y;
  const T* weight;
  T param;
  __device__ T operator()(int64_t i) const {
    const T l = regression_term(kind, x[i] - y[i], param);
    return weight ? weight[i] * l : l;
  }
};

// mean_sum: sum_i w_i e_i on the device when dweight needs the weighted mean L, else null.
template <typename T>
__global__ void regression_backward_kernel(Upstream<T> g, RegressionTerm<T> term,
                                           const double* mean_sum, int64_t n, T* dx, T* dy,
                                           T* dweight) {
  const T mean = mean_sum ? static_cast<T>(*mean_sum / (g.z_dev ? *g.z_dev : g.z)) : T(0);
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const T diff = term.x[i] - term.y[i];
    const T d = regression_slope(term.kind, diff, term.param);
    const T gi = g(i);
    const T v = gi * (term.weight ? term.weight[i] * d : d);
    if (dx) dx[i] = v;
    if (dy) dy[i] = -v;
    if (dweight) dweight[i] = gi * (regression_term(term.kind, diff, term.param) - mean);
  }
}

// Z of the mean: the weights' sum (into *slot, returned) or n (in *z, null returned).
template <typename T>
const double* regression_divisor(const T* weight, int64_t n, Reduction r, double* slot,
                                 double* z) {
  *z = r == Reduction::Mean ? double(n) : 1.0;
  if (r != Reduction::Mean || !weight) return nullptr;
  reduce_into<double, Add>(WeightTerm<T>{weight}, n, 0.0, slot);
  return slot;
}

}  // namespace

template <typename T>
void regression_loss_forward(Regression kind, const T* x, const T* y, const T* weight, int64_t n,
                             Reduction r, T* loss, T param) {
  check_count(regression_name(kind), n);
  check_regression_param(kind, double(param));
  Scratch slot(sizeof(double));
  double z = 1;
  const double* z_dev = regression_divisor(weight, n, r, slot.as<double>(), &z);
  reduce_terms(RegressionTerm<T>{kind, x, y, weight, param}, n, r, z_dev, z, loss);
}

template <typename T>
void regression_loss_backward(Regression kind, const T* dloss, const T* x, const T* y,
                              const T* weight, int64_t n, Reduction r, T* dx, T* dy, T* dweight,
                              T param) {
  check_count(regression_name(kind), n);
  check_regression_param(kind, double(param));
  if (n == 0) return;
  Scratch slots(2 * sizeof(double));
  double z = 1;
  const double* z_dev = regression_divisor(weight, n, r, slots.as<double>(), &z);
  const RegressionTerm<T> term{kind, x, y, weight, param};
  // The weighted mean sum(w l) / sum(w) also depends on w through its divisor:
  // dL/dw_i = (l_i - L) / Z, with L the loss value.
  const double* mean_sum = nullptr;
  if (dweight && weight && r == Reduction::Mean) {
    reduce_into<double, Add>(term, n, 0.0, slots.as<double>() + 1);
    mean_sum = slots.as<double>() + 1;
  }
  regression_backward_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, z, z_dev}, term, mean_sum, n, dx, dy, dweight);
  KILN_CUDA_CHECK_LAUNCH();
}

// ---- binary cross entropy

namespace {

template <typename T>
struct BceLogitsTerm {
  const T* x;
  const T* y;
  const T* weight;
  const T* pos_weight;
  __device__ T operator()(int64_t i) const {
    const T l = bce_logits_term(x[i], y[i], pos_weight ? pos_weight[i] - T(1) : T(0));
    return weight ? weight[i] * l : l;
  }
};

template <typename T>
__global__ void bce_logits_backward_kernel(Upstream<T> g, BceLogitsTerm<T> a, int64_t n, T* dx,
                                           T* dy) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const T gw = a.weight ? g(i) * a.weight[i] : g(i);
    const T pw1 = a.pos_weight ? a.pos_weight[i] - T(1) : T(0);
    if (dx) dx[i] = gw * bce_logits_dx(a.x[i], a.y[i], pw1);
    if (dy) dy[i] = gw * bce_logits_dy(a.x[i], pw1);
  }
}

template <typename T>
struct BceTerm {
  const T* x;
  const T* y;
  const T* weight;
  __device__ T operator()(int64_t i) const {
    const T l = bce_term(x[i], y[i]);
    return weight ? weight[i] * l : l;
  }
};

template <typename T>
struct BadProbability {  // i when x_i is outside [0, 1] or NaN, else kNone
  const T* x;
  __device__ int64_t operator()(int64_t i) const {
    return x[i] >= T(0) && x[i] <= T(1) ? kNone : i;
  }
};

template <typename T>
__global__ void bce_backward_kernel(Upstream<T> g, BceTerm<T> a, int64_t n, T* dx, T* dy) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const T gw = a.weight ? g(i) * a.weight[i] : g(i);
    if (dx) dx[i] = gw * bce_dx(a.x[i], a.y[i]);
    if (dy) dy[i] = gw * bce_dy(a.x[i]);
  }
}

}  // namespace

template <typename T>
void bce_with_logits_forward(const T* x, const T* y, const T* weight, const T* pos_weight,
                             int64_t n, Reduction r, T* loss) {
  check_count("binary_cross_entropy_with_logits", n);
  reduce_terms(BceLogitsTerm<T>{x, y, weight, pos_weight}, n, r, nullptr, double(n), loss);
}

template <typename T>
void bce_with_logits_backward(const T* dloss, const T* x, const T* y, const T* weight,
                              const T* pos_weight, int64_t n, Reduction r, T* dx, T* dy) {
  check_count("binary_cross_entropy_with_logits_backward", n);
  if (n == 0) return;
  bce_logits_backward_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, double(n), nullptr}, BceLogitsTerm<T>{x, y, weight, pos_weight}, n,
      dx, dy);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void bce_forward(const T* x, const T* y, const T* weight, int64_t n, Reduction r, T* loss) {
  check_count("binary_cross_entropy", n);
  BadPosition bad;
  reduce_into<int64_t, Min>(BadProbability<T>{x}, n, kNone, bad.get());
  reduce_terms(BceTerm<T>{x, y, weight}, n, r, nullptr, double(n), loss);
  bad.check([=](int64_t i) { fail_bce_input(read_back(x + i), i); });
}

template <typename T>
void bce_backward(const T* dloss, const T* x, const T* y, const T* weight, int64_t n, Reduction r,
                  T* dx, T* dy) {
  check_count("binary_cross_entropy_backward", n);
  if (n == 0) return;
  bce_backward_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, double(n), nullptr}, BceTerm<T>{x, y, weight}, n, dx, dy);
  KILN_CUDA_CHECK_LAUNCH();
}

// ---- multi_margin_loss

namespace {

template <typename T>
struct MarginTerm {  // row n's term
  const T* x;
  const int64_t* target;
  const T* weight;
  int64_t C;
  int p;
  T margin;
  __device__ double operator()(int64_t n) const {
    const T* row = x + n * C;
    const int64_t t = target[n];
    if (!valid_class(t, C)) return 0.0;
    double s = 0;
    for (int64_t c = 0; c < C; ++c)
      if (c != t) s += margin_term(double(margin) - row[t] + row[c], p);
    return s * double(weight_or_one(weight, t)) / double(C);
  }
};

template <typename T>
__global__ void margin_backward_kernel(Upstream<T> g, MarginTerm<T> a, int64_t N, T* dx) {
  for (int64_t n = first_index(); n < N; n += grid_stride()) {
    const T* row = a.x + n * a.C;
    T* drow = dx + n * a.C;
    const int64_t t = a.target[n];
    if (!valid_class(t, a.C)) {
      for (int64_t c = 0; c < a.C; ++c) drow[c] = T(0);
      continue;
    }
    const T gn = g(n) * weight_or_one(a.weight, t) / T(a.C);
    T total = 0;
    for (int64_t c = 0; c < a.C; ++c) {
      const T h = a.margin - row[t] + row[c];
      const T v = (c != t && h > T(0)) ? gn * margin_slope(h, a.p) : T(0);
      drow[c] = v;
      total += v;
    }
    drow[t] = -total;
  }
}

}  // namespace

template <typename T>
void multi_margin_forward(const T* x, const int64_t* target, const T* weight, int64_t N,
                          int64_t C, int p, T margin, Reduction r, T* loss) {
  const char* op = "multi_margin_loss";
  check_margin_sizes(op, N, C, p);
  BadPosition bad;
  reduce_into<int64_t, Min>(BadTarget{target, C, 0, false}, N, kNone, bad.get());
  reduce_terms(MarginTerm<T>{x, target, weight, C, p, margin}, N, r, nullptr, double(N), loss);
  check_bad_target(op, bad, target, C, 0, false);
}

template <typename T>
void multi_margin_backward(const T* dloss, const T* x, const int64_t* target, const T* weight,
                           int64_t N, int64_t C, int p, T margin, Reduction r, T* dx) {
  check_margin_sizes("multi_margin_loss_backward", N, C, p);
  if (N == 0 || C == 0) return;
  margin_backward_kernel<<<grid_for(N), kThreads, 0, current_stream()>>>(
      Upstream<T>{dloss, r, double(N), nullptr}, MarginTerm<T>{x, target, weight, C, p, margin},
      N, dx);
  KILN_CUDA_CHECK_LAUNCH();
}

KILN_LOSS_KERNELS(float)
KILN_LOSS_KERNELS(double)

}  // namespace kiln::cuda
