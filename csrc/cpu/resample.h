// Resampling of (N, C, H, W) images to (N, C, OH, OW), PyTorch's upsample kernels
// (nearest, nearest-exact, bilinear), forward and backward side by side. The planes
// P = N*C are independent: each is computed (and its gradient accumulated) by one
// thread, so results do not depend on the thread count.
//
// Per axis (H shown; W alike), with `scale` the source step per output step:
//   align_corners:  scale = OH > 1 ? (H - 1) / (OH - 1) : 0
//   otherwise:      scale = 1 / scale_factor when one was given, else H / OH
// (computed in T; the nearest modes always in float, as PyTorch).
//
//   nearest        src(i) = min(floor(i * scale), H - 1)
//                  (i itself when OH == H, i / 2 when OH == 2H, as PyTorch's shortcut)
//   nearest-exact  src(i) = min(floor((i + 0.5) * scale), H - 1)
//                  y[i] = x[src(i)];  dx[src(i)] += dy[i]
//   bilinear       r = align_corners ? i * scale : max((i + 0.5) * scale - 0.5, 0)
//                  h0 = floor(r), h1 = h0 + (h0 < H - 1), l1 = r - h0, l0 = 1 - l1
//                  y = l0 (m0 x[h0, w0] + m1 x[h0, w1]) + l1 (m0 x[h1, w0] + m1 x[h1, w1])
//                  (m: the W axis' weights); dx gets dy times the same four weights
//   bicubic        r = align_corners ? i * scale : (i + 0.5) * scale - 0.5  (not clamped)
//                  h0 = floor(r), t = r - h0; taps h0 - 1 .. h0 + 2, each clamped to
//                  [0, H - 1], with Keys' cubic convolution weights (A = -0.75):
//                  c0 = k2(t + 1), c1 = k1(t), c2 = k1(1 - t), c3 = k2(2 - t),
//                  k1(x) = ((A + 2) x - (A + 3)) x^2 + 1, k2(x) = ((A x - 5A) x + 8A) x - 4A
//   antialias      (bilinear, bicubic; PyTorch's separable filter, as PIL's):
//                  support = (scale >= 1 ? scale : 1) * taps / 2 (taps 2 or 4),
//                  center = (i + 0.5) * scale, invscale = scale >= 1 ? 1 / scale : 1,
//                  sources j in [max(int(center - support + 0.5), 0),
//                                min(int(center + support + 0.5), H)) (int: truncation),
//                  weights f((j - center + 0.5) * invscale), divided by their sum;
//                  f = max(1 - |x|, 0) (bilinear) or the cubic kernel with A = -0.5
//                  (bicubic: k1 for |x| < 1, k2 for |x| < 2, else 0)
// Bicubic and antialias run separably: each row is resampled along W into a buffer
// (P, H, OW), whose columns are then resampled along H (the order PyTorch's bicubic adds
// in); backward runs the transposed passes. Their taps along an axis are a fixed number
// K per output position (unused taps weigh 0).
#pragma once

#include <cstdint>

namespace kiln {

enum class Resample { Nearest, NearestExact, Bilinear, Bicubic };

struct ResampleSizes {
  int64_t planes, in_h, in_w, out_h, out_w;
};

// The options of one call: the mode, align_corners (bilinear and bicubic), the scale
// factors given to interpolate (<= 0: none given, use the sizes' ratio) and antialias
// (bilinear and bicubic).
struct ResampleOptions {
  Resample mode = Resample::Nearest;
  bool align_corners = false;
  double scale_h = 0, scale_w = 0;
  bool antialias = false;
};

// x: (P, H, W) -> y: (P, OH, OW). Throws ValueError for empty or negative sizes.
template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o);
// dy: (P, OH, OW) -> dx: (P, H, W) (overwritten, not accumulated into).
template <typename T>
void resample_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o);

}  // namespace kiln
