#include "cpu/resample.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"

namespace kiln {
namespace {

void check_sizes(const char* op, const ResampleSizes& s) {
  KILN_CHECK(s.planes >= 0 && s.in_h > 0 && s.in_w > 0 && s.out_h > 0 && s.out_w > 0, op,
             ": input (", s.planes, " planes of ", s.in_h, "x", s.in_w, ") and output (", s.out_h,
             "x", s.out_w, ") sizes must be positive");
}

// One output position's sources and weights along an axis.
template <typename T>
struct Tap {
  int64_t i0, i1;
  T l0, l1;
};

// PyTorch's compute_scales_value / area_pixel_compute_scale in the type S.
template <typename S>
S axis_scale(int64_t in, int64_t out, double scale_factor, bool align_corners) {
  if (align_corners) return out > 1 ? S(in - 1) / S(out - 1) : S(0);
  return scale_factor > 0 ? S(1.0 / scale_factor) : S(in) / S(out);
}

template <typename T>
std::vector<Tap<T>> axis_taps(int64_t in, int64_t out, double scale_factor, const ResampleOptions& o) {
  std::vector<Tap<T>> taps(static_cast<size_t>(out));
  if (o.mode == Resample::Bilinear) {
    const T scale = axis_scale<T>(in, out, scale_factor, o.align_corners);
    for (int64_t i = 0; i < out; ++i) {
      T r = o.align_corners ? scale * T(i) : scale * (T(i) + T(0.5)) - T(0.5);
      if (!o.align_corners && r < T(0)) r = T(0);
      // The clamp only guards scale factors inconsistent with the sizes (memory safety).
      const int64_t i0 = std::min(static_cast<int64_t>(r), in - 1);
      const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      const T l1 = r - T(i0);
      taps[i] = {i0, i1, T(1) - l1, l1};
    }
    return taps;
  }
  const float scale = axis_scale<float>(in, out, scale_factor, false);
  for (int64_t i = 0; i < out; ++i) {
    int64_t src;
    if (o.mode == Resample::Nearest) {
      src = out == in ? i
            : out == 2 * in
                ? i >> 1
                : std::min(static_cast<int64_t>(std::floor(float(i) * scale)), in - 1);
    } else {
      src = std::min(static_cast<int64_t>(std::floor((float(i) + 0.5f) * scale)), in - 1);
    }
    taps[i] = {src, src, T(1), T(0)};
  }
  return taps;
}

// Both axes' taps and the plane sizes of one call, shared by forward and backward.
template <typename T>
struct Plan {
  std::vector<Tap<T>> th, tw;
  int64_t in_plane, out_plane, grain;
  bool linear;
  Plan(const char* op, const ResampleSizes& s, const ResampleOptions& o)
      : th((check_sizes(op, s), axis_taps<T>(s.in_h, s.out_h, o.scale_h, o))),
        tw(axis_taps<T>(s.in_w, s.out_w, o.scale_w, o)),
        in_plane(s.in_h * s.in_w),
        out_plane(s.out_h * s.out_w),
        grain(std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(out_plane, 1))),
        linear(o.mode == Resample::Bilinear) {}
};

}  // namespace

template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o) {
  const Plan<T> plan("interpolate", s, o);
  const auto& [th, tw, in_plane, out_plane, grain, linear] = plan;
  parallel_for(0, s.planes, grain,
               [&](int64_t b, int64_t e) {
                 for (int64_t p = b; p < e; ++p) {
                   const T* xp = x + p * in_plane;
                   T* yp = y + p * out_plane;
                   for (int64_t i = 0; i < s.out_h; ++i) {
                     const Tap<T>& h = th[i];
                     const T* r0 = xp + h.i0 * s.in_w;
                     const T* r1 = xp + h.i1 * s.in_w;
                     T* out = yp + i * s.out_w;
                     for (int64_t j = 0; j < s.out_w; ++j) {
                       const Tap<T>& w = tw[j];
                       out[j] = linear ? h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) +
                                             h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1])
                                       : r0[w.i0];
                     }
                   }
                 }
               });
}

template <typename T>
void resample_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o) {
  const Plan<T> plan("interpolate_backward", s, o);
  const auto& [th, tw, in_plane, out_plane, grain, linear] = plan;
  parallel_for(0, s.planes, grain,
               [&](int64_t b, int64_t e) {
                 for (int64_t p = b; p < e; ++p) {
                   T* gp = dx + p * in_plane;
                   std::fill(gp, gp + in_plane, T(0));
                   const T* g = dy + p * out_plane;
                   for (int64_t i = 0; i < s.out_h; ++i) {
                     const Tap<T>& h = th[i];
                     T* r0 = gp + h.i0 * s.in_w;
                     T* r1 = gp + h.i1 * s.in_w;
                     const T* row = g + i * s.out_w;
                     for (int64_t j = 0; j < s.out_w; ++j) {
                       const Tap<T>& w = tw[j];
                       if (!linear) {
                         r0[w.i0] += row[j];
                         continue;
                       }
                       const T top = h.l0 * row[j], bottom = h.l1 * row[j];
                       r0[w.i0] += w.l0 * top;
                       r0[w.i1] += w.l1 * top;
                       r1[w.i0] += w.l0 * bottom;
                       r1[w.i1] += w.l1 * bottom;
                     }
                   }
                 }
               });
}

template void resample_forward<float>(const float*, float*, const ResampleSizes&,
                                      const ResampleOptions&);
template void resample_forward<double>(const double*, double*, const ResampleSizes&,
                                       const ResampleOptions&);
template void resample_backward<float>(const float*, float*, const ResampleSizes&,
                                       const ResampleOptions&);
template void resample_backward<double>(const double*, double*, const ResampleSizes&,
                                        const ResampleOptions&);

}  // namespace kiln
