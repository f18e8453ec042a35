// Activations beyond the pointwise ones (cpu/pointwise.h): PReLU, softmax and
// log-softmax, forward and backward.
//
//   prelu       x (outer, C, inner), w (C) or (1):
//               y = x > 0 ? x : w[c] x                     dx = dy * (x > 0 ? 1 : w[c])
//                                                          dw[c] = sum_{x <= 0} dy * x
//
// Softmax over one dimension, on the (outer, D, inner) view of a contiguous tensor
// (D = size of the reduced dimension, inner = product of the dimensions after it):
//   softmax      y_d = exp(x_d - m) / sum_e exp(x_e - m),  m = max_e x_e
//                dx_d = y_d * (dy_d - sum_e dy_e y_e)
//   log_softmax  y_d = x_d - m - log(sum_e exp(x_e - m))
//                dx_d = dy_d - exp(y_d) * sum_e dy_e
// Subtracting the max keeps exp from overflowing; both backward passes read only
// the saved output, so the input need not be kept.
//
// PReLU's derivative at x == 0 is the negative branch's, as in PyTorch.
#pragma once

#include <cstdint>

#include "cpu/pointwise.h"

namespace kiln {

// x, y: (outer, channels, inner); w: (weight_numel,) with weight_numel 1 or channels.
template <typename T>
void prelu_forward(const T* x, const T* w, T* y, int64_t outer, int64_t channels, int64_t inner,
                   int64_t weight_numel);
// dx (same shape as x) and dw (weight_numel,) may each be null when not wanted.
template <typename T>
void prelu_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t outer,
                    int64_t channels, int64_t inner, int64_t weight_numel);

// x, y: (outer, dim, inner); log selects log_softmax.
template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log);
// y: the forward output; dx may alias dy.
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner,
                      bool log);

}  // namespace kiln
