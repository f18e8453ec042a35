// 2-D pooling on the GPU: the twins of cpu/pool.h (same structs, names and
// arguments; the formulas are there). One thread per output for the forwards,
// scanning its window in row-major order with PyTorch's max rule (a later value
// wins when strictly larger or NaN; ties keep the first). Backwards: max pooling
// scatters dy to the argmax with atomicAdd (order-dependent in the last bits, as
// PyTorch's CUDA kernel); average pooling gathers, one thread per input element
// summing the shares of the windows that cover it (no atomics).
//
// Unlike the CPU, the device kernels cannot raise: max_pool2d_backward skips an
// index outside the plane (the CPU raises ValueError), and fractional_max_pool2d
// writes NaN with index -1 for a window that a sample outside [0, 1) would put
// outside the input (the CPU raises ValueError). The forwards never produce such
// indices or samples.
// Pointers are device memory; everything runs on the current device's stream.
#pragma once

#include <cstdint>
#include <optional>

#include "cpu/pool.h"

namespace kiln::cuda {

// indices may be null (maxima only).
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s,
                        const Pool2dWindow& win);
template <typename T>
void max_pool2d_backward(const char* op, const T* dy, const int64_t* indices, T* dx,
                         const Pool2dSizes& s);

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s, const Pool2dWindow& win,
                        bool count_include_pad, std::optional<int64_t> divisor_override);
template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s, const Pool2dWindow& win,
                         bool count_include_pad, std::optional<int64_t> divisor_override);

template <typename T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s);
template <typename T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s);
template <typename T>
void adaptive_max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s);

template <typename T>
void fractional_max_pool2d_forward(const T* x, const T* samples, T* y, int64_t* indices,
                                   const Pool2dSizes& s, int64_t kernel_h, int64_t kernel_w);

}  // namespace kiln::cuda
