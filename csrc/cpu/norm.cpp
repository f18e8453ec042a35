#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "cpu/lane_sum.h"
#include "cpu/pointwise.h"

namespace kiln {
namespace {

// Calls f(b) for every block b in [0, blocks) of `size` contiguous values (a
// batch-norm row (n, c), a group-norm group (n, g)), threaded over contiguous
// ranges of blocks: memory streams in order, and a block's second pass hits L1.
template <typename F>
void for_each_block(int64_t blocks, int64_t size, F&& f) {
  parallel_for(0, blocks, rows_per_grain(size), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

// Calls f(r) for every batch-norm row r = n*C + c (S contiguous values).
template <typename F>
void for_each_row(const BatchNormSizes& sz, F&& f) {
  for_each_block(sz.n * sz.c, sz.s, std::forward<F>(f));
}

// Batch-norm planes of at most kSmallPlane values (the late stages of a CNN:
// 8x8, 4x4, 2x2; BatchNorm1d's single values) are too short to pay a task, a
// two-pass sum and a loop per (n, c) row: rows of 4 values measured 4x slower
// than PyTorch. They run by channel spans instead: a task takes a span of
// adjacent channels, whose values in one image are one contiguous run of at most
// kSpanValues, and sweeps the images in order with per-value accumulators and
// per-value copies of the channel constants, so every loop runs over whole runs.
constexpr int64_t kSmallPlane = 64;
constexpr int64_t kSpanValues = 2048;

bool small_planes(const BatchNormSizes& sz) {
  return sz.n > 0 && sz.s > 0 && sz.s <= kSmallPlane;
}

// Calls f(c0, c1) for spans of adjacent channels (at least 8 spans where there
// are that many channels, so that threads share the work), threaded over spans.
template <typename F>
void for_each_channel_span(const BatchNormSizes& sz, F&& f) {
  const int64_t width = std::clamp<int64_t>((sz.c + 7) / 8, 1, kSpanValues / sz.s);
  const int64_t spans = (sz.c + width - 1) / width;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / (sz.n * width * sz.s));
  parallel_for(0, spans, grain, [&](int64_t s0, int64_t s1) {
    for (int64_t span = s0; span < s1; ++span)
      f(span * width, std::min(sz.c, (span + 1) * width));
  });
}

// to[(c - c0) * S + i] = from[c] for the channels of a span.
template <typename T, typename U>
void per_value(const U* from, int64_t c0, int64_t c1, int64_t s, T* to) {
  for (int64_t c = c0; c < c1; ++c) std::fill_n(to + (c - c0) * s, s, T(from[c]));
}

// Per-channel mean and biased variance. Each (n, c) row gets an exact two-pass
// mean and sum of squared deviations; rows then merge per channel in n order by
// Chan et al.'s pairwise update (stable, and independent of the thread count).
// Small planes take an exact two-pass mean and sum of squared deviations per
// channel, each value's terms summed over images in n order, then over the
// plane in order (a channel's sums never depend on its span, so neither on the
// thread count).
template <typename T>
void channel_moments(const T* x, const BatchNormSizes& sz, std::vector<double>& mean,
                     std::vector<double>& var) {
  const int64_t rows = sz.n * sz.c, count = sz.n * sz.s;
  mean.assign(sz.c, 0.0);
  var.assign(sz.c, 0.0);  // holds M2 until the final division
  if (small_planes(sz)) {
    for_each_channel_span(sz, [&](int64_t c0, int64_t c1) {
      const int64_t len = (c1 - c0) * sz.s;
      std::vector<double> acc(len), center(len);
      auto sweep = [&](auto term) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t n = 0; n < sz.n; ++n) {
          const T* xs = x + (n * sz.c + c0) * sz.s;
          for (int64_t j = 0; j < len; ++j) acc[j] += term(double(xs[j]), j);
        }
      };
      auto channel_total = [&](int64_t c) {
        double total = 0;
        for (int64_t i = 0; i < sz.s; ++i) total += acc[(c - c0) * sz.s + i];
        return total;
      };
      sweep([](double v, int64_t) { return v; });
      for (int64_t c = c0; c < c1; ++c) mean[c] = channel_total(c) / count;
      per_value(mean.data(), c0, c1, sz.s, center.data());
      sweep([&](double v, int64_t j) { return (v - center[j]) * (v - center[j]); });
      for (int64_t c = c0; c < c1; ++c) var[c] = channel_total(c);
    });
  } else if (sz.s > 0) {
    std::vector<double> row_mean(rows), row_m2(rows);
    for_each_row(sz, [&](int64_t r) {
      const T* xr = x + r * sz.s;
      const double m = lane_sum(sz.s, [&](int64_t i) { return double(xr[i]); }) / sz.s;
      row_mean[r] = m;
      row_m2[r] = lane_sum(sz.s, [&](int64_t i) {
        const double d = double(xr[i]) - m;
        return d * d;
      });
    });
    for (int64_t n = 0; n < sz.n; ++n) {
      const double before = double(n) * sz.s, total = before + sz.s;
      const double weight = sz.s / total, cross = before * sz.s / total;
      for (int64_t c = 0; c < sz.c; ++c) {
        const double delta = row_mean[n * sz.c + c] - mean[c];
        mean[c] += delta * weight;
        var[c] += row_m2[n * sz.c + c] + delta * delta * cross;
      }
    }
  }
  for (double& v : var) v = count > 0 ? v / count : 0.0;
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

namespace {

// relu(v) and its gradient mask: the pointwise ReLU's (NaN passes through), also
// the CUDA twin's (cuda/norm.cu).
template <typename T>
T relu_value(T v) {
  return pointwise::ReLU::f(v, T(0));
}

// One run of batch norm's forward values: y = relu((x - m) * a + b + r) (r, relu
// as asked), with m, a, b one per value (kPerValue: a small-plane span's
// per_value copies) or one for the whole run. Each value rounds as the unfused
// ops round it: bn(x), then + residual, then relu.
template <bool kPerValue, typename T>
void normalize_run(const T* x, const T* r, bool relu, T* y, int64_t len, const T* m, const T* a,
                   const T* b) {
  auto at = [](const T* v, int64_t i) { return kPerValue ? v[i] : v[0]; };
  if (r) {
    for (int64_t i = 0; i < len; ++i)
      y[i] = relu_value(T((x[i] - at(m, i)) * at(a, i) + at(b, i)) + r[i]);
  } else if (relu) {
    for (int64_t i = 0; i < len; ++i) y[i] = relu_value(T((x[i] - at(m, i)) * at(a, i) + at(b, i)));
  } else {
    for (int64_t i = 0; i < len; ++i) y[i] = (x[i] - at(m, i)) * at(a, i) + at(b, i);
  }
}

// Batch norm's forward with the fused epilogue y = relu(bn(x) + residual):
// residual may be null, relu false gives plain batch norm.
template <typename T>
void batch_norm_forward_impl(const T* x, const T* residual, bool relu, T* y,
                             const BatchNormSizes& sz, const T* weight, const T* bias,
                             T* running_mean, T* running_var, bool training, double momentum,
                             double eps, T* save_mean, T* save_invstd) {
  const int64_t count = sz.n * sz.s;
  std::vector<double> mean(sz.c), var(sz.c);
  if (training) {
    channel_moments(x, sz, mean, var);
    if (running_mean && count > 0)
      for (int64_t c = 0; c < sz.c; ++c) {
        const double unbiased = count > 1 ? var[c] * count / (count - 1) : var[c];
        running_mean[c] = T((1 - momentum) * running_mean[c] + momentum * mean[c]);
        running_var[c] = T((1 - momentum) * running_var[c] + momentum * unbiased);
      }
  } else {
    for (int64_t c = 0; c < sz.c; ++c) mean[c] = running_mean[c], var[c] = running_var[c];
  }
  // y = (x - center) * scale + shift. Centering before scaling keeps float32
  // accurate when |mean| >> std (x * a + b would cancel two large terms); x -
  // center is exact for x near the mean, and shift absorbs center's rounding.
  std::vector<T> center(sz.c), scale(sz.c), shift(sz.c);
  for (int64_t c = 0; c < sz.c; ++c) {
    const double invstd = 1.0 / std::sqrt(var[c] + eps);
    const double a = (weight ? double(weight[c]) : 1.0) * invstd;
    save_mean[c] = center[c] = T(mean[c]);
    save_invstd[c] = T(invstd);
    scale[c] = T(a);
    shift[c] = T((bias ? double(bias[c]) : 0.0) - (mean[c] - double(center[c])) * a);
  }
  if (small_planes(sz)) {
    for_each_channel_span(sz, [&](int64_t c0, int64_t c1) {
      const int64_t len = (c1 - c0) * sz.s;
      std::vector<T> m(len), a(len), b(len);
      per_value(center.data(), c0, c1, sz.s, m.data());
      per_value(scale.data(), c0, c1, sz.s, a.data());
      per_value(shift.data(), c0, c1, sz.s, b.data());
      for (int64_t n = 0; n < sz.n; ++n) {
        const int64_t at = (n * sz.c + c0) * sz.s;
        normalize_run<true>(x + at, residual ? residual + at : nullptr, relu, y + at, len,
                            m.data(), a.data(), b.data());
      }
    });
    return;
  }
  for_each_row(sz, [&](int64_t r) {
    const int64_t c = r % sz.c, at = r * sz.s;
    normalize_run<false>(x + at, residual ? residual + at : nullptr, relu, y + at, sz.s,
                         &center[c], &scale[c], &shift[c]);
  });
}

// The gradient reaching batch norm over one run: dy itself, or (y given, the
// fused output) dy masked as the pointwise ReLU's gradient masks it (0 where
// y <= 0, NaN passing), written to out and returned.
template <typename T>
const T* masked_run(const T* dy, const T* y, T* out, int64_t len) {
  if (!y) return dy;
  for (int64_t i = 0; i < len; ++i) {
    const T d = dy[i];  // both loads before the select: a blend, not a branch
    out[i] = pointwise::ReLU::df(y[i], d, T(0));
  }
  return out;
}

// One run of batch norm's input gradient, dx = g * a + (x - m) * b + k, with the
// constants one per value (kPerValue) or one for the run; g may be dx itself.
template <bool kPerValue, typename T>
void input_gradient_run(const T* g, const T* x, T* dx, int64_t len, const T* m, const T* a,
                        const T* b, const T* k) {
  auto at = [](const T* v, int64_t i) { return kPerValue ? v[i] : v[0]; };
  if (g == dx)  // in place, said so: a vectorized loop needs no overlap check
    for (int64_t i = 0; i < len; ++i)
      dx[i] = dx[i] * at(a, i) + (x[i] - at(m, i)) * at(b, i) + at(k, i);
  else
    for (int64_t i = 0; i < len; ++i)
      dx[i] = g[i] * at(a, i) + (x[i] - at(m, i)) * at(b, i) + at(k, i);
}

// Batch norm's backward after the fused epilogue: the gradient reaching batch
// norm is g = (y > 0 ? dy : 0) when y (the fused output) is given, else dy; it
// is also written to dresidual when that is not null.
template <typename T>
void batch_norm_backward_impl(const T* dy, const T* y, const T* x, const BatchNormSizes& sz,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              bool training, T* dx, T* dweight, T* dbias, T* dresidual) {
  // After a ReLU, the first pass writes g where the second pass reads it: into
  // dresidual, which wants it anyway, or else into dx, which the second pass
  // then overwrites in place. So y is read once, and g never materialized
  // beyond the output arrays.
  T* g = y ? (dresidual ? dresidual : dx) : nullptr;
  // Per channel: sum g and sum g * (x - mean); per (n, c) row, then summed in n
  // order, or for small planes per value over images in n order, then over the
  // plane in order.
  const int64_t count = sz.n * sz.s;
  std::vector<double> sum_dy(sz.c), sum_dy_xc(sz.c);
  if (small_planes(sz)) {
    for_each_channel_span(sz, [&](int64_t c0, int64_t c1) {
      const int64_t len = (c1 - c0) * sz.s;
      std::vector<T> m(len);
      per_value(save_mean, c0, c1, sz.s, m.data());
      std::vector<double> acc_dy(len), acc_dy_xc(len);
      for (int64_t n = 0; n < sz.n; ++n) {
        const int64_t at = (n * sz.c + c0) * sz.s;
        const T* gr = masked_run(dy + at, y ? y + at : nullptr, g ? g + at : nullptr, len);
        const T* xr = x + at;
        for (int64_t j = 0; j < len; ++j) {
          acc_dy[j] += double(gr[j]);
          acc_dy_xc[j] += double(gr[j]) * double(xr[j] - m[j]);
        }
      }
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t i = 0; i < sz.s; ++i) {
          sum_dy[c] += acc_dy[(c - c0) * sz.s + i];
          sum_dy_xc[c] += acc_dy_xc[(c - c0) * sz.s + i];
        }
    });
  } else {
    const int64_t rows = sz.n * sz.c;
    std::vector<double> row_dy(rows), row_dy_xc(rows);
    for_each_row(sz, [&](int64_t r) {
      const T m = save_mean[r % sz.c];
      const T* xr = x + r * sz.s;
      const T* gr = masked_run(dy + r * sz.s, y ? y + r * sz.s : nullptr,
                               g ? g + r * sz.s : nullptr, sz.s);
      row_dy[r] = lane_sum(sz.s, [&](int64_t i) { return double(gr[i]); });
      row_dy_xc[r] =
          lane_sum(sz.s, [&](int64_t i) { return double(gr[i]) * double(xr[i] - m); });
    });
    for (int64_t c = 0; c < sz.c; ++c)
      for (int64_t n = 0; n < sz.n; ++n) {
        sum_dy[c] += row_dy[n * sz.c + c];
        sum_dy_xc[c] += row_dy_xc[n * sz.c + c];
      }
  }
  // dx = g * a + (x - mean) * b + k per channel; in eval mode the statistics
  // are constants, so only the first term remains.
  std::vector<T> a(sz.c), b(sz.c), k(sz.c);
  for (int64_t c = 0; c < sz.c; ++c) {
    const double invstd = save_invstd[c];
    const double ac = (weight ? double(weight[c]) : 1.0) * invstd;
    dbias[c] = T(sum_dy[c]);
    dweight[c] = T(sum_dy_xc[c] * invstd);
    a[c] = T(ac);
    b[c] = T(training && count > 0 ? -ac * invstd * invstd * sum_dy_xc[c] / count : 0.0);
    k[c] = T(training && count > 0 ? -ac * sum_dy[c] / count : 0.0);
  }
  const T* grad = g ? g : dy;
  if (small_planes(sz)) {
    for_each_channel_span(sz, [&](int64_t c0, int64_t c1) {
      const int64_t len = (c1 - c0) * sz.s;
      std::vector<T> mv(len), av(len), bv(len), kv(len);
      per_value(save_mean, c0, c1, sz.s, mv.data());
      per_value(a.data(), c0, c1, sz.s, av.data());
      per_value(b.data(), c0, c1, sz.s, bv.data());
      per_value(k.data(), c0, c1, sz.s, kv.data());
      for (int64_t n = 0; n < sz.n; ++n) {
        const int64_t at = (n * sz.c + c0) * sz.s;
        input_gradient_run<true>(grad + at, x + at, dx + at, len, mv.data(), av.data(),
                                 bv.data(), kv.data());
      }
    });
    return;
  }
  for_each_row(sz, [&](int64_t r) {
    const int64_t c = r % sz.c, at = r * sz.s;
    input_gradient_run<false>(grad + at, x + at, dx + at, sz.s, &save_mean[c], &a[c], &b[c],
                              &k[c]);
  });
}

}  // namespace

template <typename T>
void batch_norm_forward(const T* x, T* y, const BatchNormSizes& sz, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* save_mean, T* save_invstd) {
  batch_norm_forward_impl<T>(x, nullptr, false, y, sz, weight, bias, running_mean, running_var,
                             training, momentum, eps, save_mean, save_invstd);
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormSizes& sz, const T* weight,
                         const T* save_mean, const T* save_invstd, bool training, T* dx,
                         T* dweight, T* dbias) {
  batch_norm_backward_impl<T>(dy, nullptr, x, sz, weight, save_mean, save_invstd, training, dx,
                              dweight, dbias, nullptr);
}

template <typename T>
void batch_norm_relu_forward(const T* x, const T* residual, T* y, const BatchNormSizes& sz,
                             const T* weight, const T* bias, T* running_mean, T* running_var,
                             bool training, double momentum, double eps, T* save_mean,
                             T* save_invstd) {
  batch_norm_forward_impl(x, residual, true, y, sz, weight, bias, running_mean, running_var,
                          training, momentum, eps, save_mean, save_invstd);
}

template <typename T>
void batch_norm_relu_backward(const T* dy, const T* y, const T* x, const BatchNormSizes& sz,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              bool training, T* dx, T* dweight, T* dbias, T* dresidual) {
  batch_norm_backward_impl(dy, y, x, sz, weight, save_mean, save_invstd, training, dx, dweight,
                           dbias, dresidual);
}

GroupNormSizes group_norm_sizes(const char* op, const Shape& input, int64_t num_groups) {
  const BatchNormSizes nc = batch_norm_sizes(op, input);
  if (num_groups <= 0) fail(op, ": num_groups must be positive, got ", num_groups);
  if (nc.c % num_groups != 0)
    fail(op, ": expected the number of channels in input to be divisible by num_groups, but "
         "got input of shape ", shape_str(input), " and num_groups=", num_groups);
  return GroupNormSizes{nc.n, nc.c, num_groups, nc.s};
}

template <typename T>
void group_norm_forward(const T* x, T* y, const GroupNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd) {
  const int64_t per_group = sz.channels_per_group(), d = sz.group_size();
  const double count = std::max<int64_t>(d, 1);  // empty groups: mean 0, variance 0
  for_each_block(sz.n * sz.groups, d, [&](int64_t r) {  // r = n*G + g
    const T* xg = x + r * d;
    const double m = lane_sum(d, [&](int64_t i) { return double(xg[i]); }) / count;
    const double m2 = lane_sum(d, [&](int64_t i) {
      const double dev = double(xg[i]) - m;
      return dev * dev;
    });
    const double inv = 1.0 / std::sqrt(m2 / count + eps);
    // y = (x - center) * scale + shift, as batch norm does (see there).
    const T center = T(m);
    mean[r] = center;
    rstd[r] = T(inv);
    const int64_t c0 = (r % sz.groups) * per_group;
    for (int64_t j = 0; j < per_group; ++j) {
      const double a = (weight ? double(weight[c0 + j]) : 1.0) * inv;
      const T scale = T(a);
      const T shift = T((bias ? double(bias[c0 + j]) : 0.0) - (m - double(center)) * a);
      const T* xr = xg + j * sz.s;
      T* yr = y + r * d + j * sz.s;
      for (int64_t i = 0; i < sz.s; ++i) yr[i] = (xr[i] - center) * scale + shift;
    }
  });
}

template <typename T>
void group_norm_backward(const T* dy, const T* x, const GroupNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias) {
  if (!dx && !dweight && !dbias) return;
  const int64_t per_group = sz.channels_per_group(), d = sz.group_size();
  const double count = std::max<int64_t>(d, 1);  // empty groups have zero sums
  // Per (n, c) row: sum dy and sum dy * (x - mean); row n*C + c is row r*C/G + j
  // of group r = n*G + g.
  std::vector<double> row_dy(sz.n * sz.c), row_dy_xc(sz.n * sz.c);
  for_each_block(sz.n * sz.groups, d, [&](int64_t r) {
    const double m = mean[r], inv = rstd[r];
    const int64_t c0 = (r % sz.groups) * per_group;
    double sum_dyw = 0, sum_dyw_xc = 0;  // dyw = dy * weight
    for (int64_t j = 0; j < per_group; ++j) {
      const int64_t row = r * per_group + j;
      const T* dyr = dy + row * sz.s;
      const T* xr = x + row * sz.s;
      row_dy[row] = lane_sum(sz.s, [&](int64_t i) { return double(dyr[i]); });
      row_dy_xc[row] =
          lane_sum(sz.s, [&](int64_t i) { return double(dyr[i]) * (double(xr[i]) - m); });
      const double w = weight ? double(weight[c0 + j]) : 1.0;
      sum_dyw += w * row_dy[row];
      sum_dyw_xc += w * row_dy_xc[row];
    }
    if (!dx) return;
    // dx = dy * weight[c] * rstd + (x - mean) * slope + offset within the group.
    const T center = mean[r];
    const T slope = T(-inv * inv * inv * sum_dyw_xc / count);
    const T offset = T(-inv * sum_dyw / count);
    for (int64_t j = 0; j < per_group; ++j) {
      const T a = T((weight ? double(weight[c0 + j]) : 1.0) * inv);
      const int64_t row = r * per_group + j;
      const T* dyr = dy + row * sz.s;
      const T* xr = x + row * sz.s;
      T* dxr = dx + row * sz.s;
      for (int64_t i = 0; i < sz.s; ++i) dxr[i] = dyr[i] * a + (xr[i] - center) * slope + offset;
    }
  });
  // dweight and dbias per channel, added over n in order.
  for (int64_t c = 0; c < sz.c && (dweight || dbias); ++c) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < sz.n; ++n) {
      sum_dy += row_dy[n * sz.c + c];
      sum_dy_xhat += row_dy_xc[n * sz.c + c] * double(rstd[n * sz.groups + c / per_group]);
    }
    if (dbias) dbias[c] = T(sum_dy);
    if (dweight) dweight[c] = T(sum_dy_xhat);
  }
}

LayerNormSizes layer_norm_sizes(const char* op, const Shape& input,
                                const Shape& normalized_shape) {
  if (normalized_shape.empty())
    fail(op, ": expected normalized_shape to have at least one dimension, got [] for input ",
         shape_str(input));
  const size_t k = normalized_shape.size();
  if (input.size() < k || !std::equal(normalized_shape.begin(), normalized_shape.end(),
                                      input.end() - static_cast<std::ptrdiff_t>(k)))
    fail(op, ": normalized_shape ", shape_str(normalized_shape),
         " must match the trailing dimensions of input ", shape_str(input));
  LayerNormSizes sz{1, 1};
  for (size_t i = 0; i < input.size(); ++i) (i + k < input.size() ? sz.rows : sz.cols) *= input[i];
  return sz;
}

template <typename T>
void layer_norm_forward(const T* x, T* y, const LayerNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd) {
  const int64_t d = sz.cols;
  const double count = std::max<int64_t>(d, 1);  // empty rows: mean 0, variance 0
  for_each_block(sz.rows, d, [&](int64_t r) {
    const T* xr = x + r * d;
    const double m = lane_sum(d, [&](int64_t i) { return double(xr[i]); }) / count;
    const double m2 = lane_sum(d, [&](int64_t i) {
      const double dev = double(xr[i]) - m;
      return dev * dev;
    });
    const double inv = 1.0 / std::sqrt(m2 / count + eps);
    // y = (x - center) * inv * w + (bias - (m - center) * inv * w), as batch norm
    // centres before scaling (see there); the correction is below float32's ulp
    // of y for all but huge |mean|, and kept so float64 is exact.
    const T center = T(m);
    const double shift = (m - double(center)) * inv;
    mean[r] = center;
    rstd[r] = T(inv);
    const T invt = T(inv);
    T* yr = y + r * d;
    if (!weight && !bias) {
      const T sh = T(shift);
      for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - center) * invt - sh;
      return;
    }
    for (int64_t i = 0; i < d; ++i) {
      const T w = weight ? weight[i] : T(1), b = bias ? bias[i] : T(0);
      yr[i] = ((xr[i] - center) * invt - T(shift)) * w + b;
    }
  });
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, const LayerNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias) {
  const int64_t d = sz.cols;
  const double count = std::max<int64_t>(d, 1);
  if (dx)
    for_each_block(sz.rows, d, [&](int64_t r) {
      const T* dyr = dy + r * d;
      const T* xr = x + r * d;
      const double m = mean[r], inv = rstd[r];
      auto w = [&](int64_t i) { return weight ? double(weight[i]) : 1.0; };
      const double sum_dyw = lane_sum(d, [&](int64_t i) { return double(dyr[i]) * w(i); });
      const double sum_dyw_xc =
          lane_sum(d, [&](int64_t i) { return double(dyr[i]) * w(i) * (double(xr[i]) - m); });
      // dx = dy * weight[i] * rstd + (x - mean) * slope + offset along the row.
      const T center = mean[r], a = T(inv);
      const T slope = T(-inv * inv * inv * sum_dyw_xc / count);
      const T offset = T(-inv * sum_dyw / count);
      T* dxr = dx + r * d;
      for (int64_t i = 0; i < d; ++i)
        dxr[i] = dyr[i] * (weight ? weight[i] : T(1)) * a + (xr[i] - center) * slope + offset;
    });
  if (!dweight && !dbias) return;
  // Per column, over rows in order: a block of columns per task, rows streamed.
  constexpr int64_t kCols = 256;
  parallel_for(0, (d + kCols - 1) / kCols, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> sw(kCols), sb(kCols);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = blk * kCols, c1 = std::min(d, c0 + kCols);
      std::fill(sw.begin(), sw.end(), 0.0);
      std::fill(sb.begin(), sb.end(), 0.0);
      for (int64_t r = 0; r < sz.rows; ++r) {
        const double m = mean[r], inv = rstd[r];
        const T* dyr = dy + r * d;
        const T* xr = x + r * d;
        for (int64_t i = c0; i < c1; ++i) {
          sb[i - c0] += double(dyr[i]);
          sw[i - c0] += double(dyr[i]) * (double(xr[i]) - m) * inv;
        }
      }
      for (int64_t i = c0; i < c1; ++i) {
        if (dweight) dweight[i] = T(sw[i - c0]);
        if (dbias) dbias[i] = T(sb[i - c0]);
      }
    }
  });
}

BatchNormSizes local_response_norm_sizes(const char* op, const Shape& input,
                                         const LocalResponseNormArgs& args) {
  if (input.size() < 3)
    fail(op, ": expected input of shape (N, C, *) with at least 3 dimensions, got ",
         shape_str(input));
  if (args.size <= 0) fail(op, ": size must be positive, got ", args.size);
  return batch_norm_sizes(op, input);
}

namespace {

// Channel c's window [c - size/2, c + (size-1)/2] clipped to [0, C).
struct ChannelWindow {
  int64_t first, last;  // inclusive
};
ChannelWindow lrn_window(int64_t c, int64_t channels, int64_t size) {
  return {std::max<int64_t>(0, c - size / 2), std::min(channels - 1, c + (size - 1) / 2)};
}

// div = k + alpha/size * (sum of x^2 over channel c's window) at each of the S
// positions of row (n, c), written to out (S doubles).
template <typename T>
void lrn_divisors(const T* x, int64_t n, int64_t c, const BatchNormSizes& sz,
                  const LocalResponseNormArgs& a, double* out) {
  const ChannelWindow w = lrn_window(c, sz.c, a.size);
  std::fill(out, out + sz.s, 0.0);
  for (int64_t j = w.first; j <= w.last; ++j) {
    const T* xj = x + (n * sz.c + j) * sz.s;
    for (int64_t i = 0; i < sz.s; ++i) out[i] += double(xj[i]) * double(xj[i]);
  }
  const double scale = a.alpha / double(a.size);
  for (int64_t i = 0; i < sz.s; ++i) out[i] = a.k + scale * out[i];
}

}  // namespace

template <typename T>
void local_response_norm_forward(const T* x, T* y, const BatchNormSizes& sz,
                                 const LocalResponseNormArgs& args) {
  for_each_block(sz.n * sz.c, sz.s * args.size, [&](int64_t r) {
    std::vector<double> div(sz.s);
    lrn_divisors(x, r / sz.c, r % sz.c, sz, args, div.data());
    const T* xr = x + r * sz.s;
    T* yr = y + r * sz.s;
    for (int64_t i = 0; i < sz.s; ++i) yr[i] = T(double(xr[i]) * std::pow(div[i], -args.beta));
  });
}

template <typename T>
void local_response_norm_backward(const T* dy, const T* x, T* dx, const BatchNormSizes& sz,
                                  const LocalResponseNormArgs& args) {
  // t = dy * x * div^(-beta-1) per value, and dx's direct term dy * div^-beta.
  const int64_t total = sz.n * sz.c * sz.s;
  std::vector<double> t(total);
  for_each_block(sz.n * sz.c, sz.s * args.size, [&](int64_t r) {
    std::vector<double> div(sz.s);
    lrn_divisors(x, r / sz.c, r % sz.c, sz, args, div.data());
    const int64_t o = r * sz.s;
    for (int64_t i = 0; i < sz.s; ++i) {
      const double p = std::pow(div[i], -args.beta);
      t[o + i] = double(dy[o + i]) * double(x[o + i]) * p / div[i];
      dx[o + i] = T(double(dy[o + i]) * p);
    }
  });
  // Row j receives from every channel c whose window holds j:
  // c in [j - (size-1)/2, j + size/2].
  const double coef = 2.0 * args.alpha * args.beta / double(args.size);
  for_each_block(sz.n * sz.c, sz.s * args.size, [&](int64_t r) {
    const int64_t n = r / sz.c, j = r % sz.c;
    const int64_t c0 = std::max<int64_t>(0, j - (args.size - 1) / 2);
    const int64_t c1 = std::min(sz.c - 1, j + args.size / 2);
    std::vector<double> acc(sz.s, 0.0);
    for (int64_t c = c0; c <= c1; ++c) {
      const double* tc = t.data() + (n * sz.c + c) * sz.s;
      for (int64_t i = 0; i < sz.s; ++i) acc[i] += tc[i];
    }
    const T* xr = x + r * sz.s;
    T* dxr = dx + r * sz.s;
    for (int64_t i = 0; i < sz.s; ++i) dxr[i] = T(double(dxr[i]) - coef * double(xr[i]) * acc[i]);
  });
}

#define KILN_NORM_INSTANTIATE(T)                                                           \
  template void batch_norm_forward<T>(const T*, T*, const BatchNormSizes&, const T*,       \
                                      const T*, T*, T*, bool, double, double, T*, T*);     \
  template void batch_norm_backward<T>(const T*, const T*, const BatchNormSizes&, const T*, \
                                       const T*, const T*, bool, T*, T*, T*);              \
  template void batch_norm_relu_forward<T>(const T*, const T*, T*, const BatchNormSizes&,  \
                                           const T*, const T*, T*, T*, bool, double, double, \
                                           T*, T*);                                        \
  template void batch_norm_relu_backward<T>(const T*, const T*, const T*,                  \
                                            const BatchNormSizes&, const T*, const T*,     \
                                            const T*, bool, T*, T*, T*, T*);               \
  template void group_norm_forward<T>(const T*, T*, const GroupNormSizes&, const T*,       \
                                      const T*, double, T*, T*);                           \
  template void group_norm_backward<T>(const T*, const T*, const GroupNormSizes&, const T*, \
                                       const T*, const T*, T*, T*, T*);                    \
  template void layer_norm_forward<T>(const T*, T*, const LayerNormSizes&, const T*,       \
                                      const T*, double, T*, T*);                           \
  template void layer_norm_backward<T>(const T*, const T*, const LayerNormSizes&, const T*, \
                                       const T*, const T*, T*, T*, T*);                    \
  template void local_response_norm_forward<T>(const T*, T*, const BatchNormSizes&,        \
                                               const LocalResponseNormArgs&);              \
  template void local_response_norm_backward<T>(const T*, const T*, T*, const BatchNormSizes&, \
                                                const LocalResponseNormArgs&);
KILN_NORM_INSTANTIATE(float)
KILN_NORM_INSTANTIATE(double)
#undef KILN_NORM_INSTANTIATE

}  // namespace kiln
