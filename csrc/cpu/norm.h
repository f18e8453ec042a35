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

}  // namespace kiln
