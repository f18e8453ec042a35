#include "cpu/resample.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"

namespace kiln {

void check_resample_sizes(const char* op, const ResampleSizes& s) {
  KILN_CHECK(s.planes >= 0 && s.in_h > 0 && s.in_w > 0 && s.out_h > 0 && s.out_w > 0, op,
             ": input (", s.planes, " planes of ", s.in_h, "x", s.in_w, ") and output (", s.out_h,
             "x", s.out_w, ") sizes must be positive");
}

namespace {

template <typename T>
using Tap = ResampleTap<T>;

template <typename T>
std::vector<Tap<T>> axis_taps(int64_t in, int64_t out, double scale_factor, const ResampleOptions& o) {
  std::vector<Tap<T>> taps(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i)
    taps[i] = resample_tap<T>(i, in, out, scale_factor, o.mode, o.align_corners);
  return taps;
}

// Both axes' taps and the plane sizes of one call, shared by forward and backward.
template <typename T>
struct Plan {
  std::vector<Tap<T>> th, tw;
  int64_t in_plane, out_plane, grain;
  bool linear;
  Plan(const char* op, const ResampleSizes& s, const ResampleOptions& o)
      : th((check_resample_sizes(op, s), axis_taps<T>(s.in_h, s.out_h, o.scale_h, o))),
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
