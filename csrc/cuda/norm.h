// Batch, group, layer and local response normalization on the GPU: the twins of
// cpu/norm.h (same size structs, names and arguments; the formulas are there).
//
// How: one block per statistic (batch norm: a channel; group norm: an (n, g) group;
// layer norm: a row). Its threads take the values in a fixed order, sums in double,
// combined by block_sum (deterministic, no atomics): first the mean, then the sum
// of squared deviations (two passes, as the CPU), then the same block writes its
// outputs. Backward likewise: the block's two sums, then its dx. Group norm's
// dweight/dbias take one block per channel; layer norm's one thread per column,
// rows in order. Local response norm: one thread per value, its window summed in
// channel order.
// Pointers are device memory; everything runs on the current device's stream.
#pragma once

#include <cstdint>

#include "cpu/norm.h"

namespace kiln::cuda {

template <typename T>
void batch_norm_forward(const T* x, T* y, const BatchNormSizes& sz, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* save_mean, T* save_invstd);
template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormSizes& sz, const T* weight,
                         const T* save_mean, const T* save_invstd, bool training, T* dx,
                         T* dweight, T* dbias);

// Fused batch norm + (residual) + ReLU (cpu/norm.h's formulas): batch norm's kernels
// with the epilogue y = relu(bn(x) + residual) and, backward, dy masked by y > 0
// (written to dresidual when not null). The ReLU is pointwise.h's, as on the CPU.
template <typename T>
void batch_norm_relu_forward(const T* x, const T* residual, T* y, const BatchNormSizes& sz,
                             const T* weight, const T* bias, T* running_mean, T* running_var,
                             bool training, double momentum, double eps, T* save_mean,
                             T* save_invstd);
template <typename T>
void batch_norm_relu_backward(const T* dy, const T* y, const T* x, const BatchNormSizes& sz,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              bool training, T* dx, T* dweight, T* dbias, T* dresidual);

template <typename T>
void group_norm_forward(const T* x, T* y, const GroupNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd);
template <typename T>
void group_norm_backward(const T* dy, const T* x, const GroupNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias);

template <typename T>
void layer_norm_forward(const T* x, T* y, const LayerNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd);
template <typename T>
void layer_norm_backward(const T* dy, const T* x, const LayerNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias);

template <typename T>
void local_response_norm_forward(const T* x, T* y, const BatchNormSizes& sz,
                                 const LocalResponseNormArgs& args);
template <typename T>
void local_response_norm_backward(const T* dy, const T* x, T* dx, const BatchNormSizes& sz,
                                  const LocalResponseNormArgs& args);

}  // namespace kiln::cuda
