#include "cpu/norm.h"

#include <algorithm>
#include <cmath>

#include "common/parallel.h"

namespace kiln {
namespace {

// sum_{i<n} term(i) in double. Independent lanes let the compiler vectorize the
// loop without -ffast-math (a single accumulator is a serial dependency chain).
template <typename F>
double lane_sum(int64_t n, F&& term) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  for (int j = 0; i < n; ++i, ++j) acc[j] += term(i);
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0];
}

// Calls f(c) for every channel, threaded over channels: a channel's N rows of
// S values are one thread's work, and its statistics need no cross-thread merge.
template <typename F>
void for_each_channel(const BatchNormSizes& sz, F&& f) {
  const int64_t per_channel = std::max<int64_t>(1, sz.n * sz.s);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / per_channel);
  parallel_for(0, sz.c, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c);
  });
}

struct Moments {
  double mean = 0, var = 0;  // var is biased (divided by the count)
};

// Mean and biased variance of channel c: each contiguous row of S values gets
// an exact two-pass mean / squared deviation (the row sits in L1 for the second
// pass), and rows merge by Chan et al.'s pairwise update.
template <typename T>
Moments channel_moments(const T* x, const BatchNormSizes& sz, int64_t c) {
  double count = 0, mean = 0, m2 = 0;
  if (sz.s == 0) return {};
  for (int64_t n = 0; n < sz.n; ++n) {
    const T* row = x + (n * sz.c + c) * sz.s;
    const double row_mean = lane_sum(sz.s, [&](int64_t i) { return double(row[i]); }) / sz.s;
    const double row_m2 = lane_sum(sz.s, [&](int64_t i) {
      const double d = double(row[i]) - row_mean;
      return d * d;
    });
    const double total = count + sz.s;
    const double delta = row_mean - mean;
    mean += delta * (sz.s / total);
    m2 += row_m2 + delta * delta * (count * sz.s / total);
    count = total;
  }
  return {mean, count > 0 ? m2 / count : 0.0};
}

}  // namespace

BatchNormSizes batch_norm_sizes(const char* op, const Shape& input) {
  if (input.size() < 2)
    fail(op, ": expected input of shape (N, C, *) with at least 2 dimensions, got ",
         shape_str(input));
  BatchNormSizes sz{input[0], input[1], 1};
  for (size_t i = 2; i < input.size(); ++i) sz.s *= input[i];
  return sz;
}

void check_channel_param(const char* op, const char* name, const Shape& param,
                         const Shape& input) {
  const BatchNormSizes sz = batch_norm_sizes(op, input);
  if (param.size() != 1 || param[0] != sz.c)
    fail(op, ": expected ", name, " of shape (", sz.c, ",) for input ", shape_str(input),
         ", got ", shape_str(param));
}

void check_batch_norm_args(const char* op, const Shape& input, bool training,
                           bool has_running_stats, double eps) {
  const BatchNormSizes sz = batch_norm_sizes(op, input);
  if (!training && !has_running_stats)
    fail(op, ": running_mean and running_var are required in eval mode (training=False)");
  if (training && sz.n * sz.s == 1)
    fail(op, ": expected more than 1 value per channel when training, got input size ",
         shape_str(input));
  if (training && !(eps > 0)) fail(op, ": eps must be positive during training, got ", eps);
}

template <typename T>
void batch_norm_forward(const T* x, T* y, const BatchNormSizes& sz, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* save_mean, T* save_invstd) {
  const int64_t count = sz.n * sz.s;
  for_each_channel(sz, [&](int64_t c) {
    double mean, var;
    if (training) {
      const Moments mo = channel_moments(x, sz, c);
      mean = mo.mean;
      var = mo.var;
      if (running_mean && count > 0) {
        const double unbiased = count > 1 ? var * count / (count - 1) : var;
        running_mean[c] = T((1 - momentum) * running_mean[c] + momentum * mean);
        running_var[c] = T((1 - momentum) * running_var[c] + momentum * unbiased);
      }
    } else {
      mean = running_mean[c];
      var = running_var[c];
    }
    const double invstd = 1.0 / std::sqrt(var + eps);
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    // Centering before scaling keeps float32 accurate when |mean| >> std
    // (x * scale + shift would cancel two large terms); x - center is exact for
    // x near the mean, and shift absorbs the rounding of center itself.
    const T center = T(mean);
    const double a = (weight ? double(weight[c]) : 1.0) * invstd;
    const T scale = T(a);
    const T shift = T((bias ? double(bias[c]) : 0.0) - (mean - double(center)) * a);
    for (int64_t n = 0; n < sz.n; ++n) {
      const int64_t off = (n * sz.c + c) * sz.s;
      const T* xr = x + off;
      T* yr = y + off;
      for (int64_t i = 0; i < sz.s; ++i) yr[i] = (xr[i] - center) * scale + shift;
    }
  });
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormSizes& sz, const T* weight,
                         const T* save_mean, const T* save_invstd, bool training, T* dx,
                         T* dweight, T* dbias) {
  const int64_t count = sz.n * sz.s;
  for_each_channel(sz, [&](int64_t c) {
    const T mean = save_mean[c];
    const double invstd = save_invstd[c];
    double sum_dy = 0, sum_dy_xc = 0;  // sum dy, sum dy * (x - mean)
    for (int64_t n = 0; n < sz.n; ++n) {
      const int64_t off = (n * sz.c + c) * sz.s;
      const T* dyr = dy + off;
      const T* xr = x + off;
      sum_dy += lane_sum(sz.s, [&](int64_t i) { return double(dyr[i]); });
      sum_dy_xc += lane_sum(sz.s, [&](int64_t i) { return double(dyr[i]) * double(xr[i] - mean); });
    }
    const double gamma = weight ? double(weight[c]) : 1.0;
    dbias[c] = T(sum_dy);
    dweight[c] = T(sum_dy_xc * invstd);
    // dx = dy * a + (x - mean) * b + k; in eval mode the statistics are
    // constants, so only the first term remains.
    const double a = gamma * invstd;
    double b = 0, k = 0;
    if (training && count > 0) {
      b = -a * invstd * invstd * sum_dy_xc / count;
      k = -a * sum_dy / count;
    }
    const T ta = T(a), tb = T(b), tk = T(k);
    for (int64_t n = 0; n < sz.n; ++n) {
      const int64_t off = (n * sz.c + c) * sz.s;
      const T* dyr = dy + off;
      const T* xr = x + off;
      T* dxr = dx + off;
      for (int64_t i = 0; i < sz.s; ++i) dxr[i] = dyr[i] * ta + (xr[i] - mean) * tb + tk;
    }
  });
}

#define KILN_NORM_INSTANTIATE(T)                                                           \
  template void batch_norm_forward<T>(const T*, T*, const BatchNormSizes&, const T*,       \
                                      const T*, T*, T*, bool, double, double, T*, T*);     \
  template void batch_norm_backward<T>(const T*, const T*, const BatchNormSizes&, const T*, \
                                       const T*, const T*, bool, T*, T*, T*);
KILN_NORM_INSTANTIATE(float)
KILN_NORM_INSTANTIATE(double)
#undef KILN_NORM_INSTANTIATE

}  // namespace kiln
