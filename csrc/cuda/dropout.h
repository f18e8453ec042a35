// Inverted dropout on the GPU, the twin of cpu/dropout.h with the same masks: the
// mask has `groups` entries, each covering `inner` consecutive elements (inner = 1:
// dropout; inner = H*W over (N, C, H, W): dropout2d), and entry g draws lane g%4 of
// Philox(seed, offset + g/4), so a mask is the same function of (seed, offset) on
// either device.
//
//   forward                                        backward
//   keep_g = uniform(g) >= p       (P = 1 - p)
//   y = x * keep_g / (1 - p)                       dx = dy * keep_g / (1 - p)
//
// Pointers are device memory; the kernels run on the current device's stream.
#pragma once

#include <cstdint>

namespace kiln::cuda {

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t groups, int64_t inner, double p,
                     uint64_t seed, uint64_t offset);

template <typename T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t groups, int64_t inner,
                      double p);

}  // namespace kiln::cuda
