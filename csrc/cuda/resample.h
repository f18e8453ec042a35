// Resampling of (N, C, H, W) images on the GPU: the twins of cpu/resample.h (same
// names and arguments; the formulas are there, and each output's taps come from
// the same resample_tap function). Forward: one thread per output. Backward: dx is
// zeroed, then one thread per output adds its dy times each tap's weight with
// atomicAdd (so float sums may differ from the CPU's in the last bits).
// Pointers are device memory; everything runs on the current device's stream.
#pragma once

#include "cpu/resample.h"

namespace kiln::cuda {

template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o);
template <typename T>
void resample_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o);

}  // namespace kiln::cuda
