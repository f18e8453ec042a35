// 2-D convolution (cross-correlation, as PyTorch) and its transpose, NCHW.
//
// conv2d, forward and backward side by side. Shapes: x (N, C, H, W),
// w (K, C/G, R, S), y (N, K, P, Q), groups G; output channel k belongs to group
// g = k / (K/G), which sees input channels gC' .. gC' + C' - 1 (C' = C/G).
//
//   forward:          y[n,k,p,q]  = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n, gC'+c, ih, iw]
//                     ih = p*stride_h - pad_h + r*dil_h,  iw = q*stride_w - pad_w + s*dil_w
//                     (x is zero outside [0,H) x [0,W))
//                     P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1   (Q likewise)
//   backward input:   dx[n, gC'+c, ih, iw] = sum over (k, r, s, p, q) reaching (ih, iw)
//                                            of w[k,c,r,s] * dy[n,k,p,q]
//   backward weight:  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, gC'+c, ih, iw]
//   backward bias:    db[k]       = sum_{n,p,q} dy[n,k,p,q]
//
// How (per image and group; xp = the image zero-padded once, so no window
// needs a bounds check):
//   forward, direct (float with AVX-512 or AVX2, cpu/simd.h; on AVX2 only below
//   64 output channels per group, see direct_pays): for a block of output pixels,
//     Y^T[pixel, k] = sum_{r,s} sum_c xp[c, window(pixel) + tap(r,s)] * w[k,c,r,s]
//     one tap_gemm (gemm_tile.h) reading xp in place, then transposed into y;
//   forward, im2col (float64, no vector unit, or wide layers on AVX2): Y[K/G, PQ] = W[K/G, C'RS] . col[C'RS, PQ],
//     col[(c,r,s), (p,q)] = xp[c, window(p,q) + tap(r,s)], 64 pixels at a time;
//   backward input: with stride 1 (and enough input channels to fill the vector
//     lanes), a forward convolution of dy by the flipped, transposed weight
//     (w'[c,k,r,s] = w[k,c,R-1-r,S-1-s], padding dil*(R-1) - pad); otherwise, channels
//     last: dcol[pixel, (r,s,c)] = dY^T . W for a block of pixels (images with few
//     output pixels share a block), each pixel's taps added into the image's padded
//     channels-last gradient as contiguous runs of S*C' (vector adds), then cropped
//     and transposed into dx;
//   backward weight: dW^T[(c,r,s), k] += sum over pixels of
//     xp[c, window(pixel) + tap(r,s)] * dY^T[pixel, k], summed over images
//     (directly with tap_gemm, or as col . dY^T);
//   depthwise (C/G == 1), all three: each output row is R*S shifted, scaled
//     input rows summed, vectorized along the row (there is no sum over
//     channels for a matrix product to share); with one output channel per
//     input channel the input gradient is such a forward at stride 1 over dy
//     spread out by the stride (zeros between its pixels), with the flipped kernel.
//
// conv_transpose2d is the same pair of maps swapped: its forward is conv2d's
// backward input, its backward input is conv2d's forward, and its weight
// gradient is conv2d's with the roles of x and dy exchanged. Shapes:
// x (N, Cin, H, W), w (Cin, Cout/G, R, S), y (N, Cout, Hout, Wout) with
//   Hout = (H-1)*stride_h - 2*pad_h + dil_h*(R-1) + output_padding_h + 1   (Wout likewise).
//
// Images, groups and pixel blocks are spread over the thread pool. The weight
// gradient sums over images in chunks fixed by the shapes, never by the pool,
// so every kernel here gives the same bits at any thread count.
#pragma once

#include <array>
#include <cstdint>

#include "common/check.h"

namespace kiln::cpu {

using Pair = std::array<int64_t, 2>;

// One sliding-window problem in conv2d's forward direction: input (N, C, H, W),
// weight (K, C/groups, R, S), output (N, K, P, Q). P and Q are stored, not
// derived: the transposed convolution's output_padding makes H taller than the
// windows of a P-row output reach, and those extra input rows get no windows.
struct ConvGeometry {
  int64_t N, C, H, W;
  int64_t K, R, S;
  int64_t P, Q;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t groups;

  Shape input_shape() const { return {N, C, H, W}; }
  Shape weight_shape() const { return {K, C / groups, R, S}; }
  Shape output_shape() const { return {N, K, P, Q}; }
};

// Validates conv2d's arguments (ValueError naming `op` and the shapes) and
// returns the geometry.
ConvGeometry conv2d_geometry(const char* op, const Shape& input, const Shape& weight,
                             Pair stride, Pair padding, Pair dilation, int64_t groups);

// conv_transpose2d's arguments, returned as the conv2d whose backward-input map
// it is: that conv2d's input is the transposed convolution's output
// (N, Cout, Hout, Wout) and its output is x (N, Cin, H, W).
ConvGeometry conv_transpose2d_geometry(const char* op, const Shape& input, const Shape& weight,
                                       Pair stride, Pair padding, Pair output_padding,
                                       Pair dilation, int64_t groups);

// Throws ValueError "<op>: expected <name> of shape <want>, got <got>" on mismatch.
void check_shape(const char* op, const char* name, const Shape& got, const Shape& want);

// bias may be null.
template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw);

// unfold (F.unfold): col (N, C*R*S, P*Q) = the im2col matrix of each image x (N, C, H, W),
// the windows of geometry g (K = groups = 1). fold (F.fold) is its adjoint: x = the sum
// of every col entry at its window position (x is overwritten).
template <typename T>
void unfold_images(const ConvGeometry& g, const T* x, T* col);
template <typename T>
void fold_images(const ConvGeometry& g, const T* col, T* x);

// db[c] = sum over n and pixels of dy[n, c, pixel]: the bias gradient of both convolutions.
template <typename T>
void channel_sum(int64_t N, int64_t C, int64_t pixels, const T* dy, T* db);
// y[n, c, pixel] += bias[c].
template <typename T>
void add_channel_bias(int64_t N, int64_t C, int64_t pixels, const T* bias, T* y);

}  // namespace kiln::cpu
