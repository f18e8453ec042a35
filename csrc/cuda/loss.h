// Losses on the GPU: the twins of cpu/loss.h with the same names, arguments and
// formulas (see that header; the per-element math is cpu/loss_terms.h's, shared).
// Pointers are device memory; the kernels run on the current device's stream.
//
// Reductions are deterministic and use no float atomics: a fixed grid of blocks
// (a function of the element count only) sums its terms in double, each block as a
// tree (cuda/reduce.cuh), then one block sums the partial sums.
//
// Because targets and inputs live on the device, the host learns about them only by
// waiting for the stream:
//   nll_loss_forward, cross_entropy_forward   return Z (the host needs it), so they
//                    wait; the class indices are checked on the device in the same
//                    pass, and a bad one throws the CPU's ValueError after the wait
//   binary_cross_entropy (bce_forward), multi_margin_forward   also wait, to check
//                    the input range and the class indices
// The backward passes do not check again (their forward did): an out-of-range class
// index contributes nothing there.
#pragma once

#include <cstdint>

#include "cpu/loss.h"

namespace kiln::cuda {

template <typename T>
T nll_loss_forward(const T* logp, ClassDims d, const ClassTargets<T>& t, Reduction r, T* loss);
template <typename T>
void nll_loss_backward(const T* dloss, ClassDims d, const ClassTargets<T>& t, Reduction r, T z,
                       T* dlogp);

template <typename T>
T cross_entropy_forward(const T* x, ClassDims d, const ClassTargets<T>& t, Reduction r, T* logp,
                        T* loss);
template <typename T>
void cross_entropy_backward(const T* dloss, const T* logp, ClassDims d, const ClassTargets<T>& t,
                            Reduction r, T z, T* dx);

template <typename T>
void soft_cross_entropy_forward(const T* x, const T* probs, const T* weight, ClassDims d,
                                T label_smoothing, Reduction r, T* logp, T* loss);
template <typename T>
void soft_cross_entropy_backward(const T* dloss, const T* logp, const T* probs, const T* weight,
                                 ClassDims d, T label_smoothing, Reduction r, T* dx, T* dprobs);

template <typename T>
void regression_loss_forward(Regression kind, const T* x, const T* y, const T* weight, int64_t n,
                             Reduction r, T* loss, T param = T(0));
template <typename T>
void regression_loss_backward(Regression kind, const T* dloss, const T* x, const T* y,
                              const T* weight, int64_t n, Reduction r, T* dx, T* dy, T* dweight,
                              T param = T(0));

template <typename T>
void bce_with_logits_forward(const T* x, const T* y, const T* weight, const T* pos_weight,
                             int64_t n, Reduction r, T* loss);
template <typename T>
void bce_with_logits_backward(const T* dloss, const T* x, const T* y, const T* weight,
                              const T* pos_weight, int64_t n, Reduction r, T* dx, T* dy);

template <typename T>
void bce_forward(const T* x, const T* y, const T* weight, int64_t n, Reduction r, T* loss);
template <typename T>
void bce_backward(const T* dloss, const T* x, const T* y, const T* weight, int64_t n, Reduction r,
                  T* dx, T* dy);

template <typename T>
void multi_margin_forward(const T* x, const int64_t* target, const T* weight, int64_t N,
                          int64_t C, int p, T margin, Reduction r, T* loss);
template <typename T>
void multi_margin_backward(const T* dloss, const T* x, const int64_t* target, const T* weight,
                           int64_t N, int64_t C, int p, T margin, Reduction r, T* dx);

}  // namespace kiln::cuda
