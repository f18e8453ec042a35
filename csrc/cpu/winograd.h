// 3x3 stride-1 convolution by Winograd's minimal filtering F(4x4, 3x3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015),
// float32, NCHW in and out. Shapes: x (N, C, H, W), w (K, C, 3, 3), y (N, K, P, Q).
//
// The output is cut into 4x4 tiles; tile (th, tw) reads the 6x6 input patch d at
// rows 4th - pad_h .. +5 and columns 4tw - pad_w .. +5 (zero outside the image):
//
//   U[k,c] = G g[k,c] G^T              weights,  6x6 per (k, c)      (once per call)
//   V[c]   = B^T d[c] B                input,    6x6 per (tile, c)
//   M[k]   = sum_c U[k,c] (.) V[c]     36 independent products over channels:
//            M_xi[tile, k] = sum_c V_xi[tile, c] U_xi[c, k]      (xi = one of 6x6 points)
//   y[k]   = A^T M[k] A + b[k]         the 4x4 output tile
//
//   G (6x3)  =  1/4    0     0      B^T (6x6) = 4  0 -5  0  1  0     A^T (4x6) = 1  1  1  1  1  0
//              -1/6 -1/6  -1/6                  0 -4 -4  1  1  0                 0  1 -1  2 -2  0
//              -1/6  1/6  -1/6                  0  4 -4 -1  1  0                 0  1  1  4  4  0
//               1/24 1/12  1/6                  0 -2 -1  2  1  0                 0  1 -1  8 -8  1
//               1/24 -1/12 1/6                  0  2 -1 -2  1  0
//               0     0     1                   0  4  0 -5  0  1
//
// Cost per 4x4 output tile: 36 C K multiply-adds against the direct method's
// 144 C K (4x fewer), plus the transforms (about 150 vector operations per 16
// input channels, 100 per 16 output channels) and two layout changes. The
// rounding differs from the direct sum's by the transforms' constants (up to 8 and
// 1/24): about 2e-6 of the output's root mean square on average and up to 4e-5 at
// worst, against about 1e-7 for the direct sum; so float64 keeps the direct sum.
//
// How: tiles are taken in blocks of whole tile rows (across images for small
// images), so a block's V (36 x tiles x C) and M (36 x tiles x K) stay in L2; a
// layer whose weights outweigh its pixels is one block, its 36 products spread
// over the threads.
// Per block: the input rows are moved channels-last (one vector of channels
// per pixel), transformed with whole vectors of channels, multiplied by the 36
// weight matrices with gemm_tile's micro-kernel, transformed back with whole
// vectors of output channels, and transposed into y. Each output is a sum in a
// fixed order, so every thread count gives the same bits.
//
// The input gradient of a stride-1 3x3 convolution is such a forward
// convolution (of dy, by the flipped, transposed weights; conv.cpp), so it takes
// this path too.
#pragma once

#include "cpu/conv.h"
#include "cpu/simd.h"

namespace kiln::cpu {

// The switch (Python: kiln.backends.cpu.conv.allow_winograd): on by default; off,
// every float32 convolution takes the direct sums, PyTorch's CPU precision. Any
// build has it (without a float vector the path never runs).
void set_winograd_allowed(bool allowed);
bool winograd_allowed();

}  // namespace kiln::cpu

#if KILN_FLOAT_VEC
namespace kiln::cpu {

// Whether g is a convolution this path computes (3x3, stride 1, no dilation,
// one group, on a machine with a float vector) and is faster for (enough
// channels and output pixels to amortize the transforms); always false while the
// path is switched off.
bool winograd_pays(const ConvGeometry& g);

// y = conv2d(x, w, bias) for such a g; bias may be null. Returns false, y then
// undefined, when an output is not finite (an Inf or NaN in x or w, or an
// overflow): the transforms spread such a value over whole tiles, to outputs whose
// windows never saw it, so the caller recomputes with the direct sum, which gives
// PyTorch's pattern of Inf and NaN.
bool conv2d_forward_winograd(const ConvGeometry& g, const float* x, const float* w,
                             const float* bias, float* y);

// dw = conv2d's weight gradient for such a g: the same transforms read backwards,
//   dw[k, c] = G^T ( sum over tiles of (A dY A^T)[k] (.) (B^T d B)[c] ) G,
// the sum over tiles one product per point xi, S_xi[c, k] = sum_t V_xi[t, c] dY^_xi[t, k],
// its blocks reduced in fixed chunks (parallel_reduce).
// Returns false likewise, dw then undefined, when a gradient is not finite.
bool conv2d_backward_weight_winograd(const ConvGeometry& g, const float* dy, const float* x,
                                     float* dw);

}  // namespace kiln::cpu
#endif  // a float vector (simd.h): without one, the direct paths serve every convolution
