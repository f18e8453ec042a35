// 2-D convolution and its transpose on the GPU, NCHW: the twins of cpu/conv.h (same
// geometry struct, names and arguments; the formulas are there).
//
// How (a chunk of images at a time, so the workspace stays bounded):
//   forward:          col = im2col(x)  (per image (C*R*S, P*Q), zero outside the image)
//                     Y_g[K/G, PQ] = W_g[K/G, C'RS] . col_g[C'RS, PQ]   (cuBLAS,
//                     batched over images or groups), then + bias[k]
//   backward input:   dcol_g = W_g^T . dY_g, then col2im: each dx element gathers the
//                     dcol entries of the windows that cover it (no atomics)
//   backward weight:  col laid out (C*R*S, images*PQ) and dY transposed to
//                     (K, images*PQ): dW_g = dYt_g . col_g^T, one product per group
//                     summing over the chunk's images and pixels, chunks added in order
//   bias:             db[c] = sum over n, pixels, one block per channel (deterministic)
// conv_transpose2d is the same maps swapped (see cpu/conv.h and the bindings).
//
// With cuDNN (built when CMake finds it: KILN_CUDNN), the three maps run through
// cuDNN's convolutions instead: descriptors and algorithms (cudnnGet*_v7, the first
// that cuDNN's heuristics return for full-precision FMA math, so float32 is not
// rounded to TF32) are chosen once per geometry and dtype and cached; workspaces come
// from the caching allocator. A geometry cuDNN refuses falls back to the path above.
// The environment variable KILN_CUDNN=0 (or set_cudnn_enabled(false)) turns it off.
// Pointers are device memory; everything runs on the current device's stream.
#pragma once

#include <cstdint>

#include "cpu/conv.h"

namespace kiln::cuda {

using cpu::ConvGeometry;

// Whether the convolutions use cuDNN: false without it or when turned off.
bool cudnn_enabled();
// Turns cuDNN on (when built with it) or off for this process (tests run both paths).
void set_cudnn_enabled(bool enabled);

// bias may be null.
template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw);

// unfold: col (N, C*R*S, P*Q) of x (N, C, H, W); fold, its adjoint, overwrites x.
template <typename T>
void unfold_images(const ConvGeometry& g, const T* x, T* col);
template <typename T>
void fold_images(const ConvGeometry& g, const T* col, T* x);

// db[c] = sum over n and pixels of dy[n, c, pixel].
template <typename T>
void channel_sum(int64_t N, int64_t C, int64_t pixels, const T* dy, T* db);
// y[n, c, pixel] += bias[c].
template <typename T>
void add_channel_bias(int64_t N, int64_t C, int64_t pixels, const T* bias, T* y);

}  // namespace kiln::cuda
