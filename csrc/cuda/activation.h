// Activations on the GPU: the twins of cpu/activation.h (prelu, softmax,
// log_softmax) and of cpu/pointwise.h's pointwise ops, with the same names,
// arguments and formulas (see those headers); the pointwise kernels instantiate
// cpu/pointwise.h's structs (KILN_HD), so every op of KILN_POINTWISE_OPS has a GPU
// kernel with nothing written twice.
//
//   pointwise   one thread per element: y = f(x; p), dx = df(saved, dy; p)
//   softmax     inner == 1: one block per row, reduced as a tree (cuda/reduce.cuh);
//               inner > 1: one thread per (outer, inner) column, looping over dim
//   prelu       one thread per element; dw: one block per channel reduces over
//               (outer, inner) in double, a second one-block pass sums the channels
//               for a single weight, so dw is deterministic
//
// Pointers are device memory; the kernels run on the current device's stream.
#pragma once

#include <cstdint>

#include "cpu/pointwise.h"

namespace kiln::cuda {

template <typename T>
void pointwise_forward(Pointwise op, T param, const T* x, T* y, int64_t n);
template <typename T>
void pointwise_backward(Pointwise op, T param, const T* saved, const T* dy, T* dx, int64_t n);

template <typename T>
void prelu_forward(const T* x, const T* w, T* y, int64_t outer, int64_t channels, int64_t inner,
                   int64_t weight_numel);
// dx and dw may each be null when not wanted.
template <typename T>
void prelu_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t outer,
                    int64_t channels, int64_t inner, int64_t weight_numel);

template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log);
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner,
                      bool log);

}  // namespace kiln::cuda
