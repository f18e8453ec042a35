// Losses, forward and backward. Every loss produces one term l_i per element
// (or per sample/position) and reduces:
//   'none' -> L = (l_i)            dL/dl_i = g_i           (g: the incoming gradient, same shape)
//   'sum'  -> L = sum_i l_i        dL/dl_i = g
//   'mean' -> L = sum_i l_i / Z    dL/dl_i = g / Z         (Z per loss, below)
//
// Classification losses see the input as (N, C, S): C classes along dimension 1,
// S = d1*d2*... positions per sample (S = 1 for (N, C)); a position is i = (n, s).
//
// nll_loss / cross_entropy with class indices t_i (w: class weights, default 1;
// eps: label smoothing; positions with t_i == ignore_index contribute nothing):
//   q_ic = (1 - eps) w_c [c == t_i] + (eps / C) w_c        (soft "target" of position i)
//   l_i  = -sum_c q_ic logp_ic
//   Z    = sum over non-ignored i of w_{t_i}                (PyTorch's weighted mean)
//   dlogp_ic = -g_i q_ic
// cross_entropy first takes logp = log_softmax(x) over C, then the above; its
// backward goes through log_softmax's:  dx_ic = dlogp_ic - p_ic sum_c dlogp_ic,
// i.e. dx_ic = g_i (p_ic sum_c q_ic - q_ic).
//
// cross_entropy with class probabilities P (same shape as x; ignore_index does not apply):
//   q_ic = w_c ((1 - eps) P_ic + eps / C),  l_i = -sum_c q_ic logp_ic,  Z = N * S
//   dx as above;  dP_ic = -g_i (1 - eps) w_c logp_ic
//
// mse_loss:  e_i = (x_i - y_i)^2    de_i/dx_i = 2 (x_i - y_i)
// l1_loss:   e_i = |x_i - y_i|      de_i/dx_i = sign(x_i - y_i)   (0 at x_i == y_i)
// smooth_l1_loss (b = beta >= 0; d = x_i - y_i; b = 0 is l1_loss):
//   e_i = |d| < b ? d^2 / (2 b) : |d| - b / 2      de_i/dx_i = |d| < b ? d / b : sign(d)
// huber_loss (delta > 0; d = x_i - y_i):
//   e_i = |d| < delta ? d^2 / 2 : delta (|d| - delta / 2)
//   de_i/dx_i = clamp(d, -delta, delta)
//   l_i = w_i e_i with optional per-element weights w (default 1), Z = sum_i w_i (= n)
//   dx_i = g_i w_i de_i/dx_i,   dy_i = -dx_i,
//   dw_i = g_i e_i ('none', 'sum');  dw_i = g (e_i - L) / Z ('mean': Z depends on w too)
//
// binary_cross_entropy_with_logits (w: weight, pw: pos_weight, both already broadcast
// to x's shape or absent; log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)) stays finite):
//   l_i  = w_i ((1 - y_i) x_i - (1 + (pw_i - 1) y_i) log(sigmoid(x_i)))          Z = n
//   dx_i = g_i w_i ((1 - y_i) - (1 + (pw_i - 1) y_i) sigmoid(-x_i))
//   dy_i = g_i w_i (-x_i - (pw_i - 1) log(sigmoid(x_i)))
//
// binary_cross_entropy (x: probabilities in [0, 1], w: weight broadcast to x or absent;
// the logs clamped to >= -100 as PyTorch, so x = 0 or 1 gives a finite loss):
//   l_i  = -w_i (y_i max(log x_i, -100) + (1 - y_i) max(log1p(-x_i), -100))    Z = n
//   dx_i = g_i w_i (x_i - y_i) / max(x_i (1 - x_i), 1e-12)
//   dy_i = g_i w_i (log1p(-x_i) - log x_i)
// An x outside [0, 1] (or NaN) throws ValueError before anything is written.
//
// multi_margin_loss (x: (N, C), t_n class indices, p in {1, 2}, w: class weights):
//   l_n  = sum_{c != t_n} w_{t_n} max(0, margin - x_{n,t_n} + x_{n,c})^p / C      Z = N
//   dx_{n,c}   = g_n w_{t_n} p h^(p-1) / C   for each c != t_n with h = margin - x_t + x_c > 0
//   dx_{n,t_n} = -sum_{c != t_n} dx_{n,c}
//
// Reductions sum in double over fixed-size blocks, so the result does not depend
// on the thread count. Class indices are range-checked before any is used.
#pragma once

#include <cstdint>
#include <string>

#include "common/check.h"

namespace kiln {

enum class Reduction { None, Mean, Sum };

// 'none' | 'mean' | 'sum'; anything else throws ValueError naming op.
Reduction parse_reduction(const std::string& reduction, const char* op);

struct ClassDims {
  int64_t N, C, S;
};

enum class Regression { MSE, L1, SmoothL1, Huber };

// The argument checks (ValueError naming op) the CPU kernels and their CUDA twins
// (cuda/loss.h) share.
void check_count(const char* op, int64_t n);
void check_dims(const char* op, ClassDims d);
void check_smoothing(const char* op, double label_smoothing);  // in [0, 1]
[[noreturn]] void fail_class_target(const char* op, int64_t target, int64_t position, int64_t C,
                                    int64_t ignore_index, bool has_ignore);
const char* regression_name(Regression kind);  // "mse_loss", ...
void check_regression_param(Regression kind, double param);
void check_margin_sizes(const char* op, int64_t N, int64_t C, int p);  // N, C >= 0; p 1 or 2
// binary_cross_entropy's input x at flat index i is outside [0, 1] (or NaN).
template <typename T>
[[noreturn]] void fail_bce_input(T x, int64_t i) {
  fail<ValueError>("binary_cross_entropy: all elements of input should be between 0 and 1, got ",
                   x, " at flat index ", i);
}

// Class-index targets for nll_loss and cross_entropy.
template <typename T>
struct ClassTargets {
  const int64_t* target;  // (N * S)
  const T* weight;        // (C) or null
  int64_t ignore_index;
  T label_smoothing;  // 0 for nll_loss
};

// loss: N*S values for Reduction::None, one value otherwise.
// Returns Z, the mean's normalizer, which backward needs again.
template <typename T>
T nll_loss_forward(const T* logp, ClassDims d, const ClassTargets<T>& t, Reduction r, T* loss);
template <typename T>
void nll_loss_backward(const T* dloss, ClassDims d, const ClassTargets<T>& t, Reduction r, T z,
                       T* dlogp);

// Fused log_softmax + nll: writes logp (N, C, S), which backward reads.
template <typename T>
T cross_entropy_forward(const T* x, ClassDims d, const ClassTargets<T>& t, Reduction r, T* logp,
                        T* loss);
template <typename T>
void cross_entropy_backward(const T* dloss, const T* logp, ClassDims d, const ClassTargets<T>& t,
                            Reduction r, T z, T* dx);

// Class probabilities P (N, C, S); weight (C) or null. dprobs may be null.
template <typename T>
void soft_cross_entropy_forward(const T* x, const T* probs, const T* weight, ClassDims d,
                                T label_smoothing, Reduction r, T* logp, T* loss);
template <typename T>
void soft_cross_entropy_backward(const T* dloss, const T* logp, const T* probs, const T* weight,
                                 ClassDims d, T label_smoothing, Reduction r, T* dx, T* dprobs);

// x, y, weight: n elements each (weight may be null); dx, dy, dweight may each be null.
// param: smooth_l1_loss' beta or huber_loss' delta, unused by the others.
template <typename T>
void regression_loss_forward(Regression kind, const T* x, const T* y, const T* weight, int64_t n,
                             Reduction r, T* loss, T param = T(0));
template <typename T>
void regression_loss_backward(Regression kind, const T* dloss, const T* x, const T* y,
                              const T* weight, int64_t n, Reduction r, T* dx, T* dy, T* dweight,
                              T param = T(0));

// weight and pos_weight: n elements or null; dx and dy may each be null.
template <typename T>
void bce_with_logits_forward(const T* x, const T* y, const T* weight, const T* pos_weight,
                             int64_t n, Reduction r, T* loss);
template <typename T>
void bce_with_logits_backward(const T* dloss, const T* x, const T* y, const T* weight,
                              const T* pos_weight, int64_t n, Reduction r, T* dx, T* dy);

// x, y: n elements; weight: n elements or null; dx and dy may each be null.
template <typename T>
void bce_forward(const T* x, const T* y, const T* weight, int64_t n, Reduction r, T* loss);
template <typename T>
void bce_backward(const T* dloss, const T* x, const T* y, const T* weight, int64_t n, Reduction r,
                  T* dx, T* dy);

// x: (N, C); target: (N); weight: (C) or null; p: 1 or 2.
template <typename T>
void multi_margin_forward(const T* x, const int64_t* target, const T* weight, int64_t N,
                          int64_t C, int p, T margin, Reduction r, T* loss);
template <typename T>
void multi_margin_backward(const T* dloss, const T* x, const int64_t* target, const T* weight,
                           int64_t N, int64_t C, int p, T margin, Reduction r, T* dx);

}  // namespace kiln

// The explicit instantiations of every loss kernel above for element type T: one
// list, expanded in cpu/loss.cpp and in cuda/loss.cu (whose twins have the same
// names and arguments) inside each backend's namespace.
#define KILN_LOSS_KERNELS(T)                                                                      \
  template T nll_loss_forward<T>(const T*, ClassDims, const ClassTargets<T>&, Reduction, T*);     \
  template void nll_loss_backward<T>(const T*, ClassDims, const ClassTargets<T>&, Reduction, T,   \
                                     T*);                                                         \
  template T cross_entropy_forward<T>(const T*, ClassDims, const ClassTargets<T>&, Reduction, T*, \
                                      T*);                                                        \
  template void cross_entropy_backward<T>(const T*, const T*, ClassDims, const ClassTargets<T>&,  \
                                          Reduction, T, T*);                                      \
  template void soft_cross_entropy_forward<T>(const T*, const T*, const T*, ClassDims, T,         \
                                              Reduction, T*, T*);                                 \
  template void soft_cross_entropy_backward<T>(const T*, const T*, const T*, const T*, ClassDims, \
                                               T, Reduction, T*, T*);                             \
  template void regression_loss_forward<T>(Regression, const T*, const T*, const T*, int64_t,     \
                                           Reduction, T*, T);                                     \
  template void regression_loss_backward<T>(Regression, const T*, const T*, const T*, const T*,   \
                                            int64_t, Reduction, T*, T*, T*, T);                   \
  template void bce_forward<T>(const T*, const T*, const T*, int64_t, Reduction, T*);             \
  template void bce_backward<T>(const T*, const T*, const T*, const T*, int64_t, Reduction, T*,   \
                                T*);                                                              \
  template void bce_with_logits_forward<T>(const T*, const T*, const T*, const T*, int64_t,       \
                                           Reduction, T*);                                        \
  template void bce_with_logits_backward<T>(const T*, const T*, const T*, const T*, const T*,     \
                                            int64_t, Reduction, T*, T*);                          \
  template void multi_margin_forward<T>(const T*, const int64_t*, const T*, int64_t, int64_t,     \
                                        int, T, Reduction, T*);                                   \
  template void multi_margin_backward<T>(const T*, const T*, const int64_t*, const T*, int64_t,   \
                                         int64_t, int, T, Reduction, T*);
