#include "cpu/dropout.h"

#include <algorithm>

#include "common/check.h"
#include "common/parallel.h"
#include "common/rng.h"

namespace kiln {
namespace {

template <typename T>
T keep_scale(double p) {
  return p < 1 ? T(1.0 / (1.0 - p)) : T(0);
}

// Elements per parallel chunk, in units of `per_item` elements.
int64_t grain_for(int64_t per_item) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, per_item));
}

}  // namespace

void check_dropout_p(const char* op, double p) {
  if (!(p >= 0 && p <= 1)) fail(op, ": dropout probability has to be between 0 and 1, but got ", p);
}

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t groups, int64_t inner, double p,
                     uint64_t seed, uint64_t offset) {
  check_dropout_p("dropout", p);
  const T scale = keep_scale<T>(p);
  const int64_t counters = dropout_counters(groups);
  parallel_for(0, counters, grain_for(4 * inner), [&](int64_t c0, int64_t c1) {
    for (int64_t ctr = c0; ctr < c1; ++ctr) {
      const auto bits = philox4x32(seed, offset + static_cast<uint64_t>(ctr));
      const int64_t g_end = std::min(groups, 4 * ctr + 4);
      for (int64_t g = 4 * ctr; g < g_end; ++g) {
        const bool keep = double(uniform01(bits[g - 4 * ctr])) >= p;
        mask[g] = keep;
        // A multiply (not a select) so NaN and inf propagate as in x * mask.
        const T factor = keep ? scale : T(0);
        for (int64_t i = g * inner; i < (g + 1) * inner; ++i) y[i] = x[i] * factor;
      }
    }
  });
}

template <typename T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t groups, int64_t inner,
                      double p) {
  check_dropout_p("dropout_backward", p);
  const T scale = keep_scale<T>(p);
  parallel_for(0, groups, grain_for(inner), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const T factor = mask[g] ? scale : T(0);
      for (int64_t i = g * inner; i < (g + 1) * inner; ++i) dx[i] = dy[i] * factor;
    }
  });
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, int64_t, double,
                                     uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, int64_t, double,
                                      uint64_t, uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, int64_t,
                                      double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, int64_t,
                                       double);

}  // namespace kiln
