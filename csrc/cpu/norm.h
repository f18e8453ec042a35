// Batch normalization over input (N, C, *), viewed as (N, C, S) with S the
// product of the trailing sizes (S = 1 for (N, C)). Statistics are per channel
// c over the M = N*S values x[n, c, s].
//
//   forward (training)                           backward (training)
//   mean = sum x / M                             dbeta  = sum dy
//   var  = sum (x - mean)^2 / M   (biased)       dgamma = sum dy * xhat
//   invstd = 1 / sqrt(var + eps)                 dx = gamma*invstd * (dy - dbeta/M - xhat*dgamma/M)
//   xhat = (x - mean) * invstd
//   y = gamma * xhat + beta
//   running_mean = (1-m) running_mean + m mean
//   running_var  = (1-m) running_var  + m var * M/(M-1)   (unbiased)
//
//   forward (eval): mean, invstd from the running statistics; backward (eval):
//   dx = gamma*invstd * dy, dgamma and dbeta as above.
//
// gamma (weight) and beta (bias) are optional (1 and 0). Statistics accumulate
// in double: per (n, c) row a two-pass mean and sum of squared deviations,
// merged across rows with Chan's formula, so one sweep over memory is stable.
//
// Fused batch norm + ReLU, and batch norm + residual add + ReLU (a ResNet
// block's tail): with z = gamma * xhat + beta as above and r the residual
// (input's shape; absent: 0),
//
//   forward                                      backward (g: the gradient reaching z)
//   y = relu(z + r) = max(z + r, 0)              g  = dy where y > 0, else 0   (ReLU's rule)
//                                                dr = g
//                                                dbeta, dgamma, dx: batch norm's with dy := g
//
// The forward makes one pass after the statistics where the unfused ops take
// three (normalize, add, ReLU): x (and r) read, y written once. The backward
// masks dy by y in its first pass and writes g where its second pass reads it
// (into dr, wanted anyway, or into dx, then overwritten in place): 7 array
// passes against the unfused 8 (ReLU's gradient 3, batch norm's 5). y is what
// forward returns and backward reads for the mask (ReLU saves its output too).
// Values round as the unfused ops round them (z, then z + r, then the ReLU),
// and the sums are batch norm's, so results equal the unfused path.
//
// Group normalization over input (N, C, *), viewed as (N, G, D) with G groups
// of C/G channels and D = C/G * S values per (n, g); a group is D contiguous
// values. Statistics are per (n, g) over its D values; weight and bias (C,)
// per channel.
//
//   forward (sums over (n, g)'s D values)      backward
//   mean = sum x / D                           dyw = dy * weight[c]
//   var  = sum (x - mean)^2 / D   (biased)     dx  = rstd * (dyw - sum dyw / D
//   rstd = 1 / sqrt(var + eps)                               - xhat * sum (dyw * xhat) / D)
//   xhat = (x - mean) * rstd                   dweight[c] = sum over n, s of dy * xhat
//   y = weight[c] * xhat + bias[c]             dbias[c]   = sum over n, s of dy
//
// Sums accumulate in double, each (n, g) two-pass on one thread and dweight,
// dbias added over n in order, so results do not depend on the thread count.
//
// Layer normalization over the trailing normalized_shape dims of input
// (*, normalized_shape), viewed as (M, D) with D = prod(normalized_shape): each
// of the M rows is normalized over its D contiguous values; weight and bias
// have normalized_shape (D values), one per position in the row.
//
//   forward (per row, sums over its D values)  backward
//   mean = sum x / D                           dyw = dy * weight[i]
//   var  = sum (x - mean)^2 / D   (biased)     dx  = rstd * (dyw - sum dyw / D
//   rstd = 1 / sqrt(var + eps)                               - xhat * sum (dyw * xhat) / D)
//   xhat = (x - mean) * rstd                   dweight[i] = sum over rows of dy * xhat
//   y = weight[i] * xhat + bias[i]             dbias[i]   = sum over rows of dy
//
// Row sums are two-pass in double on one thread; dweight and dbias add the rows
// in order per column, so results do not depend on the thread count.
//
// Local response normalization (AlexNet's, PyTorch's local_response_norm) of
// input (N, C, *) viewed as (N, C, S), across channels within a window of
// `size` channels, zero-padded: channel c's window is
// W(c) = [c - size/2, c + (size-1)/2] (integer division) clipped to [0, C).
//
//   forward                                    backward
//   sq[c]  = sum over j in W(c) of x[j]^2      dx[j] = dy[j] * div[j]^-beta
//   div[c] = k + alpha/size * sq[c]                    - 2 alpha beta / size * x[j]
//   y[c]   = x[c] * div[c]^-beta                         * sum over c with j in W(c) of
//                                                          dy[c] * x[c] * div[c]^(-beta-1)
//   (per (n, s), across c; the divisor is always `size`, padding counted)
//
// Each output (n, c) row is computed on one thread in double, its window summed
// in channel order; backward first writes dy * x * div^(-beta-1) for every value.
#pragma once

#include <cstdint>

#include "common/check.h"

namespace kiln {

struct BatchNormSizes {
  int64_t n = 0, c = 0, s = 0;
};

// Validates input (N, C, *) (rank >= 2, C > 0) and returns (N, C, S).
BatchNormSizes batch_norm_sizes(const char* op, const Shape& input);

// Checks that a per-channel argument (running_mean, weight, save_invstd, ...) has shape (C,).
void check_channel_param(const char* op, const char* name, const Shape& param,
                         const Shape& input);

// Checks the arguments PyTorch checks: running statistics present in eval mode,
// more than one value per channel and eps > 0 when training.
void check_batch_norm_args(const char* op, const Shape& input, bool training,
                           bool has_running_stats, double eps);

// y, save_mean and save_invstd (C values) are written; save_* hold the batch
// statistics in training and the running ones in eval, ready for backward.
// running_mean / running_var may be null in training (then nothing is updated).
template <typename T>
void batch_norm_forward(const T* x, T* y, const BatchNormSizes& sz, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* save_mean, T* save_invstd);

// Writes dx (shape of x), dweight and dbias (C values each). weight may be null.
template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormSizes& sz, const T* weight,
                         const T* save_mean, const T* save_invstd, bool training, T* dx,
                         T* dweight, T* dbias);

// y = relu(batch_norm(x) + residual); residual (x's shape) may be null. Other
// arguments and outputs as batch_norm_forward.
template <typename T>
void batch_norm_relu_forward(const T* x, const T* residual, T* y, const BatchNormSizes& sz,
                             const T* weight, const T* bias, T* running_mean, T* running_var,
                             bool training, double momentum, double eps, T* save_mean,
                             T* save_invstd);

// Gradients of batch_norm_relu_forward from dy and its output y: dx, dweight,
// dbias as batch_norm_backward with dy masked by y > 0, and, when dresidual is
// not null, dresidual (x's shape) = the masked dy.
template <typename T>
void batch_norm_relu_backward(const T* dy, const T* y, const T* x, const BatchNormSizes& sz,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              bool training, T* dx, T* dweight, T* dbias, T* dresidual);

struct GroupNormSizes {
  int64_t n = 0, c = 0, groups = 0, s = 0;
  int64_t channels_per_group() const { return c / groups; }
  int64_t group_size() const { return c / groups * s; }  // D
};

// Validates input (N, C, *) (rank >= 2) and num_groups (positive, dividing C);
// returns (N, C, G, S).
GroupNormSizes group_norm_sizes(const char* op, const Shape& input, int64_t num_groups);

// Writes y (shape of x) and mean, rstd (N*G values, row-major (N, G)), ready for
// backward. weight and bias (C values) may be null (1 and 0).
template <typename T>
void group_norm_forward(const T* x, T* y, const GroupNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd);

// Writes dx (shape of x), dweight and dbias (C values each); each output may be
// null, and its work is then skipped. weight may be null (1).
template <typename T>
void group_norm_backward(const T* dy, const T* x, const GroupNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias);

struct LayerNormSizes {
  int64_t rows = 0, cols = 0;  // M and D
};

// Validates input (*, normalized_shape): normalized_shape non-empty and equal to
// input's trailing dims; returns (M, D).
LayerNormSizes layer_norm_sizes(const char* op, const Shape& input, const Shape& normalized_shape);

// Writes y (shape of x) and mean, rstd (M values each), ready for backward.
// weight and bias (D values) may be null (1 and 0).
template <typename T>
void layer_norm_forward(const T* x, T* y, const LayerNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd);

// Writes dx (shape of x), dweight and dbias (D values each); each output may be
// null, and its work is then skipped. weight may be null (1).
template <typename T>
void layer_norm_backward(const T* dy, const T* x, const LayerNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias);

struct LocalResponseNormArgs {
  int64_t size = 1;
  double alpha = 1e-4, beta = 0.75, k = 1.0;
};

// Validates input (N, C, *) with at least 3 dims and size > 0; returns (N, C, S).
BatchNormSizes local_response_norm_sizes(const char* op, const Shape& input,
                                         const LocalResponseNormArgs& args);

// Writes y (shape of x).
template <typename T>
void local_response_norm_forward(const T* x, T* y, const BatchNormSizes& sz,
                                 const LocalResponseNormArgs& args);

// Writes dx (shape of x) from dy and x (the divisors are recomputed from x).
template <typename T>
void local_response_norm_backward(const T* dy, const T* x, T* dx, const BatchNormSizes& sz,
                                  const LocalResponseNormArgs& args);

}  // namespace kiln
