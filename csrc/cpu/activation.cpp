// Without it GCC sinks the arithmetic of a select's arm (vmath::exp's polynomial,
// leaky_relu's a * x) into a branch, which it then may not execute unconditionally
// because it could trap, and the loops stay scalar; results are the same bits.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "cpu/activation.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/vmath.h"

namespace kiln {
namespace {

// Elementwise work below this many elements runs on the calling thread.
constexpr int64_t kGrain = 1 << 15;

void check_count(const char* op, int64_t n) {
  KILN_CHECK(n >= 0, op, ": negative element count ", n);
}

// Each chunk works on its own copy of f: a captured parameter read through the
// closure could alias the output, which would stop vectorization.
template <typename T, typename F>
void map_unary(const T* x, T* y, int64_t n, F f) {
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    const F fn = f;
    for (int64_t i = b; i < e; ++i) y[i] = fn(x[i]);
  });
}

template <typename T, typename F>
void map_binary(const T* a, const T* g, T* out, int64_t n, F f) {
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    const F fn = f;
    for (int64_t i = b; i < e; ++i) out[i] = fn(a[i], g[i]);
  });
}

// max by value: std::max returns a reference, a select between addresses that the
// vectorizer does not take.
template <typename T>
T max_of(T a, T b) {
  return a < b ? b : a;
}

}  // namespace

template <typename T>
void pointwise_forward(Pointwise op, T param, const T* x, T* y, int64_t n) {
  check_count("pointwise_forward", n);
  visit_pointwise(op, [&](auto o) {
    using Op = decltype(o);
    map_unary(x, y, n, [param](T v) { return Op::f(v, param); });
  });
}

template <typename T>
void pointwise_backward(Pointwise op, T param, const T* saved, const T* dy, T* dx, int64_t n) {
  check_count("pointwise_backward", n);
  visit_pointwise(op, [&](auto o) {
    using Op = decltype(o);
    map_binary(saved, dy, dx, n, [param](T s, T g) { return Op::df(s, g, param); });
  });
}

namespace {

void check_prelu(const char* op, int64_t outer, int64_t channels, int64_t inner,
                 int64_t weight_numel) {
  KILN_CHECK(outer >= 0 && channels >= 0 && inner >= 0, op, ": negative size in (outer=", outer,
             ", channels=", channels, ", inner=", inner, ")");
  KILN_CHECK(weight_numel == 1 || weight_numel == channels, op, ": weight has ", weight_numel,
             " elements but the input has ", channels, " channels (expected 1 or ", channels, ")");
}

// Calls f(c, begin, end) over flat ranges of one channel each, in parallel over
// the (outer, channel) planes.
template <typename F>
void for_each_plane(int64_t outer, int64_t channels, int64_t inner, F f) {
  const int64_t planes = outer * channels;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1));
  parallel_for(0, planes, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) f(p % channels, p * inner, (p + 1) * inner);
  });
}

}  // namespace

template <typename T>
void prelu_forward(const T* x, const T* w, T* y, int64_t outer, int64_t channels, int64_t inner,
                   int64_t weight_numel) {
  check_prelu("prelu_forward", outer, channels, inner, weight_numel);
  for_each_plane(outer, channels, inner, [&](int64_t c, int64_t b, int64_t e) {
    const T a = w[weight_numel == 1 ? 0 : c];
    for (int64_t i = b; i < e; ++i) y[i] = x[i] > T(0) ? x[i] : a * x[i];
  });
}

template <typename T>
void prelu_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t outer,
                    int64_t channels, int64_t inner, int64_t weight_numel) {
  check_prelu("prelu_backward", outer, channels, inner, weight_numel);
  if (dx) {
    for_each_plane(outer, channels, inner, [&](int64_t c, int64_t b, int64_t e) {
      const T a = w[weight_numel == 1 ? 0 : c];
      for (int64_t i = b; i < e; ++i) dx[i] = x[i] > T(0) ? dy[i] : a * dy[i];
    });
  }
  if (!dw) return;
  // The weight gradient reduces over outer and inner: one accumulator per channel,
  // each channel owned by one chunk, so no two threads write the same sum.
  std::vector<double> acc(static_cast<size_t>(channels), 0.0);
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(outer * inner, 1));
  parallel_for(0, channels, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0;
      for (int64_t o = 0; o < outer; ++o) {
        const T* xs = x + (o * channels + c) * inner;
        const T* gs = dy + (o * channels + c) * inner;
        s += vmath::lane_sum<T>(inner,
                                [&](int64_t i) { return xs[i] > T(0) ? T(0) : xs[i] * gs[i]; });
      }
      acc[c] = s;
    }
  });
  if (weight_numel == 1) {
    double s = 0;
    for (double v : acc) s += v;
    dw[0] = static_cast<T>(s);
  } else {
    for (int64_t c = 0; c < channels; ++c) dw[c] = static_cast<T>(acc[c]);
  }
}

namespace {

void check_softmax(const char* op, int64_t outer, int64_t dim, int64_t inner) {
  KILN_CHECK(outer >= 0 && dim >= 0 && inner >= 0, op, ": negative size in (outer=", outer,
             ", dim=", dim, ", inner=", inner, ")");
}

// Softmax work comes in slices reduced independently: with inner == 1 a slice is
// one contiguous row, reduced in lanes (vmath::lane_sum, row_max); otherwise it is
// (one outer index, a tile of up to kTile inner columns), the columns reduced side by
// side over dim. Either way the innermost loops are contiguous and vectorize.
constexpr int64_t kTile = 256;

// row(base) for each contiguous row, or tile(base, width) for each column tile.
template <typename Row, typename Tile>
void for_each_slice(int64_t outer, int64_t dim, int64_t inner, Row row, Tile tile) {
  if (inner == 1) {
    parallel_for(0, outer, std::max<int64_t>(1, kGrain / dim), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) row(o * dim);
    });
    return;
  }
  const int64_t tiles = (inner + kTile - 1) / kTile;
  const int64_t per_unit = std::max<int64_t>(1, dim * std::min(inner, kTile));
  parallel_for(0, outer * tiles, std::max<int64_t>(1, kGrain / per_unit),
               [&](int64_t b, int64_t e) {
                 for (int64_t u = b; u < e; ++u) {
                   const int64_t o = u / tiles, i0 = (u % tiles) * kTile;
                   tile(o * dim * inner + i0, std::min(kTile, inner - i0));
                 }
               });
}

// y = exp(x - m) over n elements. A function of its own: written inline in the row
// lambda, GCC judged the call to exp cold, inlined it late and left the loop scalar.
template <typename T>
void exp_shifted(const T* x, T m, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vmath::exp(x[i] - m);
}

template <typename T>
T row_max(const T* x, int64_t n) {
  T acc[vmath::kLanes];
  std::fill(acc, acc + vmath::kLanes, x[0]);
  int64_t d = 0;
  for (; d + vmath::kLanes <= n; d += vmath::kLanes)
    for (int64_t l = 0; l < vmath::kLanes; ++l) acc[l] = max_of(acc[l], x[d + l]);
  T m = x[0];
  for (; d < n; ++d) m = max_of(m, x[d]);
  for (int64_t l = 0; l < vmath::kLanes; ++l) m = max_of(m, acc[l]);
  return m;
}

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  check_softmax(log ? "log_softmax_forward" : "softmax_forward", outer, dim, inner);
  if (dim == 0) return;
  auto row = [&](int64_t base) {
    const T* xs = x + base;
    T* ys = y + base;
    const T m = row_max(xs, dim);
    if (log) {  // (x - m) - log(s), not x - (m + log(s)): m + log(s) would round at |m|'s scale
      const T ls =
          std::log(vmath::lane_sum<T>(dim, [&](int64_t d) { return vmath::exp(xs[d] - m); }));
      for (int64_t d = 0; d < dim; ++d) ys[d] = (xs[d] - m) - ls;
    } else {
      exp_shifted(xs, m, ys, dim);
      const T inv = T(1) / vmath::lane_sum<T>(dim, [&](int64_t d) { return ys[d]; });
      for (int64_t d = 0; d < dim; ++d) ys[d] *= inv;
    }
  };
  auto tile = [&](int64_t base, int64_t w) {
    T m[kTile], s[kTile];
    const T* xs = x + base;
    T* ys = y + base;
    std::copy(xs, xs + w, m);
    for (int64_t d = 1; d < dim; ++d)
      for (int64_t i = 0; i < w; ++i) m[i] = max_of(m[i], xs[d * inner + i]);
    std::fill(s, s + w, T(0));
    if (log) {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) s[i] += vmath::exp(xs[d * inner + i] - m[i]);
      for (int64_t i = 0; i < w; ++i) s[i] = std::log(s[i]);
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) ys[d * inner + i] = (xs[d * inner + i] - m[i]) - s[i];
    } else {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) {
          ys[d * inner + i] = vmath::exp(xs[d * inner + i] - m[i]);
          s[i] += ys[d * inner + i];
        }
      for (int64_t i = 0; i < w; ++i) s[i] = T(1) / s[i];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) ys[d * inner + i] *= s[i];
    }
  };
  for_each_slice(outer, dim, inner, row, tile);
}

template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner,
                      bool log) {
  check_softmax(log ? "log_softmax_backward" : "softmax_backward", outer, dim, inner);
  if (dim == 0) return;
  // dx = dy - exp(y) sum(dy)  (log)   or   y (dy - sum(dy y)). The pointers are
  // copied into each slice's locals: read through the closure they could alias dx,
  // and the loops would not vectorize.
  auto row = [&, log](int64_t base) {
    const T *ys = y + base, *gs = dy + base;
    T* xs = dx + base;
    if (log) {
      const T s = vmath::lane_sum<T>(dim, [&](int64_t d) { return gs[d]; });
      for (int64_t d = 0; d < dim; ++d) xs[d] = gs[d] - vmath::exp(ys[d]) * s;
    } else {
      const T s = vmath::lane_sum<T>(dim, [&](int64_t d) { return gs[d] * ys[d]; });
      for (int64_t d = 0; d < dim; ++d) xs[d] = ys[d] * (gs[d] - s);
    }
  };
  auto tile = [&, log](int64_t base, int64_t w) {
    const T *ys = y + base, *gs = dy + base;
    T* xs = dx + base;
    T s[kTile];
    std::fill(s, s + w, T(0));
    if (log) {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) s[i] += gs[d * inner + i];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i)
          xs[d * inner + i] = gs[d * inner + i] - vmath::exp(ys[d * inner + i]) * s[i];
    } else {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i) s[i] += gs[d * inner + i] * ys[d * inner + i];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < w; ++i)
          xs[d * inner + i] = ys[d * inner + i] * (gs[d * inner + i] - s[i]);
    }
  };
  for_each_slice(outer, dim, inner, row, tile);
}

#define KILN_INSTANTIATE(T)                                                                   \
  template void pointwise_forward<T>(Pointwise, T, const T*, T*, int64_t);                    \
  template void pointwise_backward<T>(Pointwise, T, const T*, const T*, T*, int64_t);         \
  template void prelu_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t); \
  template void prelu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t,     \
                                  int64_t, int64_t);                                          \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool);            \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln
