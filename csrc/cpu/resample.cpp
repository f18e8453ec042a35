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
        grain(rows_per_grain(out_plane)),
        linear(o.mode == Resample::Bilinear) {}
};

// Bicubic and antialias: K taps per output position along one axis (see the header),
// index[i * k + t] and weight[i * k + t]; unused taps read index 0 with weight 0.
template <typename T>
struct WideTaps {
  int64_t k = 0;
  std::vector<int64_t> index;
  std::vector<T> weight;
};

// Keys' cubic convolution kernel with parameter a: k1 on [0, 1), k2 on [1, 2).
template <typename T>
T cubic1(T x, T a) {
  return ((a + T(2)) * x - (a + T(3))) * x * x + T(1);
}
template <typename T>
T cubic2(T x, T a) {
  return ((a * x - T(5) * a) * x + T(8) * a) * x - T(4) * a;
}

template <typename T>
WideTaps<T> wide_taps(int64_t in, int64_t out, double scale_factor, const ResampleOptions& o) {
  WideTaps<T> taps;
  const T scale = resample_scale<T>(in, out, scale_factor, o.align_corners);
  if (!o.antialias) {  // bicubic
    taps.k = 4;
    taps.index.resize(static_cast<size_t>(out * 4));
    taps.weight.resize(static_cast<size_t>(out * 4));
    const T a = T(-0.75);
    for (int64_t i = 0; i < out; ++i) {
      const T r = o.align_corners ? scale * T(i) : scale * (T(i) + T(0.5)) - T(0.5);
      const T floor = std::floor(r);
      const T t = r - floor;
      const T c[4] = {cubic2(t + T(1), a), cubic1(t, a), cubic1(T(1) - t, a),
                      cubic2(T(2) - t, a)};
      const int64_t first = static_cast<int64_t>(floor) - 1;
      for (int64_t k = 0; k < 4; ++k) {
        taps.index[i * 4 + k] = std::clamp<int64_t>(first + k, 0, in - 1);
        taps.weight[i * 4 + k] = c[k];
      }
    }
    return taps;
  }
  const bool cubic = o.mode == Resample::Bicubic;
  const T half = cubic ? T(2) : T(1);
  const T support = scale >= T(1) ? half * scale : half;
  const T invscale = scale >= T(1) ? T(1) / scale : T(1);
  taps.k = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.index.assign(static_cast<size_t>(out * taps.k), 0);
  taps.weight.assign(static_cast<size_t>(out * taps.k), T(0));
  for (int64_t i = 0; i < out; ++i) {
    const T center = scale * (T(i) + T(0.5));
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + T(0.5)), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + T(0.5)), in);
    const int64_t n = std::min(hi - lo, taps.k);
    int64_t* index = taps.index.data() + i * taps.k;
    T* weight = taps.weight.data() + i * taps.k;
    T total = T(0);
    for (int64_t j = 0; j < n; ++j) {
      const T x = std::abs((T(j + lo) - center + T(0.5)) * invscale);
      const T w = cubic ? (x < T(1) ? cubic1(x, T(-0.5)) : x < T(2) ? cubic2(x, T(-0.5)) : T(0))
                        : (x < T(1) ? T(1) - x : T(0));
      index[j] = lo + j;
      weight[j] = w;
      total += w;
    }
    if (total != T(0))
      for (int64_t j = 0; j < n; ++j) weight[j] /= total;
  }
  return taps;
}

bool wide(const ResampleOptions& o) { return o.mode == Resample::Bicubic || o.antialias; }

// Both axes' wide taps of one call, shared by forward and backward.
template <typename T>
struct WidePlan {
  WideTaps<T> th, tw;
  int64_t in_plane, out_plane, grain;
  WidePlan(const char* op, const ResampleSizes& s, const ResampleOptions& o)
      : th((check_resample_sizes(op, s), wide_taps<T>(s.in_h, s.out_h, o.scale_h, o))),
        tw(wide_taps<T>(s.in_w, s.out_w, o.scale_w, o)),
        in_plane(s.in_h * s.in_w),
        out_plane(s.out_h * s.out_w),
        grain(rows_per_grain(out_plane)) {
    KILN_CHECK(!o.antialias || o.mode == Resample::Bilinear || o.mode == Resample::Bicubic, op,
               ": antialias is only for the bilinear and bicubic modes");
  }
};

template <typename T>
void wide_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o) {
  const WidePlan<T> plan("interpolate", s, o);
  const WideTaps<T>&th = plan.th, &tw = plan.tw;
  parallel_for(0, s.planes, plan.grain, [&](int64_t b, int64_t e) {
    std::vector<T> rows(static_cast<size_t>(s.in_h * s.out_w));  // the plane along W
    for (int64_t p = b; p < e; ++p) {
      const T* xp = x + p * plan.in_plane;
      for (int64_t h = 0; h < s.in_h; ++h) {
        const T* in_row = xp + h * s.in_w;
        T* row = rows.data() + h * s.out_w;
        for (int64_t j = 0; j < s.out_w; ++j) {
          const int64_t* index = tw.index.data() + j * tw.k;
          const T* weight = tw.weight.data() + j * tw.k;
          T acc = weight[0] * in_row[index[0]];
          for (int64_t t = 1; t < tw.k; ++t) acc += weight[t] * in_row[index[t]];
          row[j] = acc;
        }
      }
      T* yp = y + p * plan.out_plane;
      for (int64_t i = 0; i < s.out_h; ++i) {
        T* out = yp + i * s.out_w;
        for (int64_t t = 0; t < th.k; ++t) {
          const T w = th.weight[i * th.k + t];
          const T* row = rows.data() + th.index[i * th.k + t] * s.out_w;
          for (int64_t j = 0; j < s.out_w; ++j) out[j] = t == 0 ? w * row[j] : out[j] + w * row[j];
        }
      }
    }
  });
}

template <typename T>
void wide_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o) {
  const WidePlan<T> plan("interpolate_backward", s, o);
  const WideTaps<T>&th = plan.th, &tw = plan.tw;
  parallel_for(0, s.planes, plan.grain, [&](int64_t b, int64_t e) {
    std::vector<T> rows(static_cast<size_t>(s.in_h * s.out_w));
    for (int64_t p = b; p < e; ++p) {
      std::fill(rows.begin(), rows.end(), T(0));
      const T* g = dy + p * plan.out_plane;
      for (int64_t i = 0; i < s.out_h; ++i) {
        const T* grad_row = g + i * s.out_w;
        for (int64_t t = 0; t < th.k; ++t) {
          const T w = th.weight[i * th.k + t];
          T* row = rows.data() + th.index[i * th.k + t] * s.out_w;
          for (int64_t j = 0; j < s.out_w; ++j) row[j] += w * grad_row[j];
        }
      }
      T* gp = dx + p * plan.in_plane;
      std::fill(gp, gp + plan.in_plane, T(0));
      for (int64_t h = 0; h < s.in_h; ++h) {
        const T* row = rows.data() + h * s.out_w;
        T* in_row = gp + h * s.in_w;
        for (int64_t j = 0; j < s.out_w; ++j) {
          const int64_t* index = tw.index.data() + j * tw.k;
          const T* weight = tw.weight.data() + j * tw.k;
          for (int64_t t = 0; t < tw.k; ++t) in_row[index[t]] += weight[t] * row[j];
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o) {
  if (wide(o)) return wide_forward(x, y, s, o);
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
  if (wide(o)) return wide_backward(dy, dx, s, o);
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
