// A 4x4 convolution at stride 2 with padding 1 (a DCGAN discriminator's layers;
// the transposed one, a generator's, is its input gradient) as a 3x3 stride-1
// convolution of the space-to-depth input, float32. Shapes: x (N, C, H, W) with H
// and W even, w (K, C, 4, 4), y (N, K, H/2, W/2).
//
//   x'[n, 4c + 2a + b, i, j]   = x[n, c, 2i + a, 2j + b]              (N, 4C, H/2, W/2)
//   w'[k, 4c + 2a + b, r', s'] = w[k, c, 2r' + a - 1, 2s' + b - 1]     (K, 4C, 3, 3),
//                                zero where 2r' + a - 1 or 2s' + b - 1 is -1 or 4
//   y = conv2d(x', w', padding 1)
//
// since input row 2p - 1 + r of output row p is row i = p - 1 + r' of phase a for
// r = 2r' + a - 1: each of the 16 taps lands on exactly one (r', a, s', b). The
// 3x3 convolution then takes Winograd's F(4x4, 3x3) (winograd.h): 36 (4C) K
// multiply-adds per 4x4 output tile, 9 C K per output pixel against the direct
// method's 16 C K (1.8x fewer), for copies of x and w in the new layout.
//
//   backward input:  dx  = depth-to-space of conv2d's input gradient for (dy, w')
//   backward weight: dw[k, c, r, s] = dw'[k, 4c + 2a + b, r', s'] at that tap's
//                    (r', a, s', b); the zero taps' gradients are dropped
#pragma once

#include "cpu/conv.h"

namespace kiln::cpu {

// Whether g is such a convolution and its 3x3 counterpart takes the Winograd path.
bool space_to_depth_pays(const ConvGeometry& g);

void conv2d_forward_s2d(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                        float* y);
void conv2d_backward_input_s2d(const ConvGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_s2d(const ConvGeometry& g, const float* dy, const float* x,
                                float* dw);

}  // namespace kiln::cpu
