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

#include <cmath>
#include <cstdint>

#include "common/hd.h"

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

// ValueError naming op unless every size is positive (planes may be 0).
void check_resample_sizes(const char* op, const ResampleSizes& s);

// One output position's sources and weights along an axis: the output reads
// l0 * in[i0] + l1 * in[i1] (nearest modes: i0 = i1, l0 = 1, l1 = 0).
template <typename T>
struct ResampleTap {
  int64_t i0, i1;
  T l0, l1;
};

// PyTorch's compute_scales_value / area_pixel_compute_scale in the type S.
template <typename S>
KILN_HD inline S resample_scale(int64_t in, int64_t out, double scale_factor,
                                bool align_corners) {
  if (align_corners) return out > 1 ? S(in - 1) / S(out - 1) : S(0);
  return scale_factor > 0 ? S(1.0 / scale_factor) : S(in) / S(out);
}

KILN_HD inline int64_t resample_at_most(int64_t v, int64_t hi) { return v < hi ? v : hi; }

// The tap of output position i along an axis of `in` inputs and `out` outputs, as
// the formulas above (shared by the CPU and CUDA kernels). The clamps only guard
// scale factors inconsistent with the sizes (memory safety).
template <typename T>
KILN_HD inline ResampleTap<T> resample_tap(int64_t i, int64_t in, int64_t out,
                                           double scale_factor, Resample mode,
                                           bool align_corners) {
  if (mode == Resample::Bilinear) {
    const T scale = resample_scale<T>(in, out, scale_factor, align_corners);
    T r = align_corners ? scale * T(i) : scale * (T(i) + T(0.5)) - T(0.5);
    if (!align_corners && r < T(0)) r = T(0);
    const int64_t i0 = resample_at_most(static_cast<int64_t>(r), in - 1);
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const T l1 = r - T(i0);
    return {i0, i1, T(1) - l1, l1};
  }
  const float scale = resample_scale<float>(in, out, scale_factor, false);
  int64_t src;
  if (mode == Resample::Nearest)
    src = out == in       ? i
          : out == 2 * in ? i >> 1
                          : resample_at_most(static_cast<int64_t>(floorf(float(i) * scale)),
                                             in - 1);
  else
    src = resample_at_most(static_cast<int64_t>(floorf((float(i) + 0.5f) * scale)), in - 1);
  return {src, src, T(1), T(0)};
}

// x: (P, H, W) -> y: (P, OH, OW). Throws ValueError for empty or negative sizes.
template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o);
// dy: (P, OH, OW) -> dx: (P, H, W) (overwritten, not accumulated into).
template <typename T>
void resample_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o);

}  // namespace kiln
