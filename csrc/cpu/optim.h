// Optimizer updates and gradient clipping over many tensors in one call.
//
// A parameter group is a list of slots; slot i holds parameter p_i, its
// gradient and the rule's state buffers, all numel_i elements. The kernels view
// the group as one flat range of sum(numel_i) elements that parallel_for splits
// over the pool, so a group of many small tensors (ResNet-20: 65 tensors, 0.27M
// values) and one of a few huge ones both spread evenly over the threads; a
// group below one grain runs on the calling thread. Each element is read and
// written once per step: an update is memory-bound, so one pass is the floor.
//
// The rules are PyTorch 2.13's single-tensor ones (torch/optim/*.py), with its
// order of operations, its fused multiply-adds (add with alpha, addcmul, lerp)
// and scalars rounded to T, so runs agree step for step to a rounding or two
// (ATen's vectorized sqrt is not correctly rounded; std::sqrt is). Per
// element, with g = maximize ? -grad : grad and t the slot's step counter
// (float32, incremented before use, as PyTorch keeps it):
//
//   SGD       wd:  g = g + wd*p
//             mom: b = (first step) ? g : mom*b + (1-dampening)*g
//                  g = nesterov ? g + mom*b : b
//             p = p - lr*g
//   Adagrad   t += 1;  clr = lr / (1 + (t-1)*lr_decay)
//             g = g + wd*p;  s = s + g*g;  p = p - clr * g / (sqrt(s) + eps)
//   RMSprop   t += 1;  g = g + wd*p;  v = alpha*v + (1-alpha)*g*g
//             centered: a = lerp(a, g, 1-alpha);  d = sqrt(v - a*a) + eps
//             else:     d = sqrt(v) + eps
//             mom: b = mom*b + g/d;  p = p - lr*b        else: p = p - lr*g/d
//   Adam      t += 1;  AdamW (decoupled): p = p*(1 - lr*wd)   Adam: g = g + wd*p
//             m = lerp(m, g, 1-beta1);  v = beta2*v + (1-beta2)*g*g
//             amsgrad: vmax = max(vmax, v), used instead of v below
//             p = p - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//   Adadelta  t += 1;  g = g + wd*p;  v = rho*v + (1-rho)*g*g
//             d = sqrt(u + eps) / sqrt(v + eps) * g;  u = rho*u + (1-rho)*d*d
//             p = p - lr*d
//   Adamax    t += 1;  g = g + wd*p;  m = lerp(m, g, 1-beta1)
//             u = max(beta2*u, |g| + eps);  p = p - lr/(1-beta1^t) * m / u
//   NAdam     t += 1;  decoupled: p = p*(1 - lr*wd)   else: g = g + wd*p
//             mu_t = beta1 (1 - 0.96^(t*psi) / 2) (psi: momentum_decay);  P = P * mu_t
//             (P: the float32 product of the mu's so far, kept per parameter)
//             m = lerp(m, g, 1-beta1);  v = beta2*v + (1-beta2)*g*g
//             d = sqrt(v / (1-beta2^t)) + eps
//             p = p - lr (1-mu_t)/(1-P) * g/d;  p = p - lr mu_{t+1}/(1-P mu_{t+1}) * m/d
//   RAdam     t += 1;  decoupled: p = p*(1 - lr*wd)   else: g = g + wd*p
//             m = lerp(m, g, 1-beta1);  v = beta2*v + (1-beta2)*g*g
//             rho_inf = 2/(1-beta2) - 1;  rho_t = rho_inf - 2t beta2^t/(1-beta2^t)
//             rho_t > 5: r = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))
//                        p = p - m/(1-beta1^t) * lr * sqrt(1-beta2^t)/(sqrt(v) + eps) * r
//             else:      p = p - m/(1-beta1^t) * lr
//
// Bytes per element (s = sizeof(T)), the floor the benchmark compares with:
// SGD 3s (5s with momentum), Adagrad 5s, RMSprop 5s (+2s centered, +2s
// momentum), Adam/AdamW 7s (9s with amsgrad).
//
// Clipping reductions: norm(g_i, q) per tensor (q = inf: max|x|, -inf: min|x|,
// 0: count of nonzeros, else (sum |x|^q)^(1/q), accumulated in double), then
// total = norm((norm_1, ..., norm_n), q) as torch.nn.utils.clip_grad_norm_
// combines them. The per-tensor sums use fixed blocks, so the result does not
// depend on the thread count.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln {

template <typename T>
struct ParamSlot {
  T* param = nullptr;
  const T* grad = nullptr;
  int64_t numel = 0;
  // The rule's buffers, in the order its options struct lists; unused ones stay null.
  std::array<T*, 3> state{};
  // Step counter (Adagrad, RMSprop, Adam, ...); PyTorch keeps it as a float32 scalar.
  float* step = nullptr;
  // NAdam's product of momentum coefficients, a float32 scalar as PyTorch keeps it.
  float* mu_product = nullptr;
  // SGD: the momentum buffer was allocated for this step and is not initialised yet.
  bool fresh = false;
};

// state: {momentum_buffer} (only when momentum != 0).
struct SgdOptions {
  double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
};
// state: {sum}.
struct AdagradOptions {
  double lr = 1e-2, lr_decay = 0, weight_decay = 0, eps = 1e-10;
  bool maximize = false;
};
// state: {square_avg, grad_avg (centered), momentum_buffer (momentum > 0)}.
struct RmspropOptions {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
  bool centered = false, maximize = false;
};
// state: {exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)}.
struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false, maximize = false, decoupled_weight_decay = false;
};

// state: {square_avg, acc_delta}.
struct AdadeltaOptions {
  double lr = 1.0, rho = 0.9, eps = 1e-6, weight_decay = 0;
  bool maximize = false;
};
// state: {exp_avg, exp_inf}.
struct AdamaxOptions {
  double lr = 2e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool maximize = false;
};
// state: {exp_avg, exp_avg_sq}; slots carry mu_product.
struct NadamOptions {
  double lr = 2e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0,
         momentum_decay = 4e-3;
  bool maximize = false, decoupled_weight_decay = false;
};
// state: {exp_avg, exp_avg_sq}.
struct RadamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool maximize = false, decoupled_weight_decay = false;
};

// Each step throws ValueError (naming `op`) for out-of-range hyperparameters or
// a slot missing a buffer the options need, before any tensor is touched.
template <typename T>
void sgd_step(const char* op, const std::vector<ParamSlot<T>>& slots, const SgdOptions& o);
template <typename T>
void adagrad_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const AdagradOptions& o);
template <typename T>
void rmsprop_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const RmspropOptions& o);
template <typename T>
void adam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamOptions& o);

template <typename T>
void adadelta_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                   const AdadeltaOptions& o);
template <typename T>
void adamax_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamaxOptions& o);
template <typename T>
void nadam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const NadamOptions& o);
template <typename T>
void radam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const RadamOptions& o);

// The eight rules as X(kernel, Options, arg): the one list the explicit instantiations
// of both backends (cpu/optim.cpp, cuda/optim.cu) and the bindings' kernel forwarders
// (bindings/optim_steps.h) expand.
#define KILN_OPTIM_RULES(X, arg)         \
  X(sgd_step, SgdOptions, arg)           \
  X(adagrad_step, AdagradOptions, arg)   \
  X(rmsprop_step, RmspropOptions, arg)   \
  X(adam_step, AdamOptions, arg)         \
  X(adadelta_step, AdadeltaOptions, arg) \
  X(adamax_step, AdamaxOptions, arg)     \
  X(nadam_step, NadamOptions, arg)       \
  X(radam_step, RadamOptions, arg)
// The explicit instantiation of a rule's kernel for T.
#define KILN_OPTIM_INSTANTIATE_STEP(kernel, Options, T) \
  template void kernel<T>(const char*, const std::vector<ParamSlot<T>>&, const Options&);

template <typename T>
struct Span {
  T* data = nullptr;
  int64_t numel = 0;
};

// The norms' fixed reduction blocks, shared with the CUDA twin (cuda/optim.h): block
// k covers elements [first[k], first[k] + min(kNormBlock, numel - first[k])) of tensor
// owner[k], never two tensors, so the partial results do not depend on the threads.
constexpr int64_t kNormBlock = 1 << 14;
struct NormBlocks {
  std::vector<std::size_t> owner;
  std::vector<int64_t> first;
};
// ValueError for a negative size.
NormBlocks norm_blocks(const std::vector<int64_t>& numels);
// ValueError for a NaN norm type; for a NaN clamp bound.
void check_norm_type(double q);
void check_clamp_bounds(double lo, double hi);
// The blocks of a tensor_norms call, after checking q.
template <typename T>
NormBlocks norm_blocks_of(const std::vector<Span<const T>>& tensors, double q) {
  check_norm_type(q);
  std::vector<int64_t> numels;
  for (const Span<const T>& t : tensors) numels.push_back(t.numel);
  return norm_blocks(numels);
}
// The count per-tensor norms from the blocks' partial results (sums of |x|^q, or the
// extremes of |x| for q = +-inf), combined in block order.
std::vector<double> combine_norm_partials(const NormBlocks& blocks,
                                          const std::vector<double>& partial, std::size_t count,
                                          double q);
// norm(t_i, q) for every tensor (see the header comment), in double.
template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q);
// norm((v_1, ..., v_n), q) with the same definition.
double vector_norm(const std::vector<double>& values, double q);
// t_i *= factor (factor rounded to T first, as a PyTorch scalar multiply).
template <typename T>
void scale_(const std::vector<Span<T>>& tensors, double factor);
// t_i = min(max(t_i, lo), hi); NaN stays NaN.
template <typename T>
void clamp_(const std::vector<Span<T>>& tensors, double lo, double hi);

}  // namespace kiln
