// Normalization kernels on the GPU (see norm.h): one block per statistic.
#include "cuda/norm.h"

#include <climits>
#include <cmath>

#include "cpu/pointwise.h"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

#define KILN_BLOCK_STRIDE(j, total) \
  for (int64_t j = threadIdx.x; j < (total); j += blockDim.x)

// Value j of batch-norm channel c (j = n*S + s): x[n, c, s].
__device__ inline int64_t channel_index(int64_t j, int64_t c, const BatchNormSizes& sz) {
  return (j / sz.s * sz.c + c) * sz.s + j % sz.s;
}

// Block c: channel c's statistics (batch or running), the running update, save_*,
// then y = (x - center) * scale + shift as cpu/norm.cpp, with the fused epilogue
// when asked: + residual (not null), then ReLU (relu), rounded as the unfused ops.
template <typename T>
__global__ void batch_norm_forward_kernel(const T* x, const T* residual, bool relu, T* y,
                                          BatchNormSizes sz, const T* weight, const T* bias,
                                          T* running_mean, T* running_var, bool training,
                                          double momentum, double eps, T* save_mean,
                                          T* save_invstd) {
  const int64_t c = blockIdx.x, count = sz.n * sz.s;
  double mean, var;
  if (training) {
    double sum = 0;
    KILN_BLOCK_STRIDE(j, count) sum += double(x[channel_index(j, c, sz)]);
    const double total = block_sum(sum);
    mean = count > 0 ? total / count : 0.0;
    double m2 = 0;
    KILN_BLOCK_STRIDE(j, count) {
      const double d = double(x[channel_index(j, c, sz)]) - mean;
      m2 += d * d;
    }
    m2 = block_sum(m2);
    var = count > 0 ? m2 / count : 0.0;
  } else {
    mean = running_mean[c];
    var = running_var[c];
  }
  const double invstd = 1.0 / sqrt(var + eps);
  const double a = (weight ? double(weight[c]) : 1.0) * invstd;
  const T center = T(mean), scale = T(a);
  const T shift = T((bias ? double(bias[c]) : 0.0) - (mean - double(center)) * a);
  __syncthreads();  // every thread has read running_* before thread 0 updates them
  if (threadIdx.x == 0) {
    if (training && running_mean && count > 0) {
      const double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean);
      running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * unbiased);
    }
    save_mean[c] = center;
    save_invstd[c] = T(invstd);
  }
  KILN_BLOCK_STRIDE(j, count) {
    const int64_t i = channel_index(j, c, sz);
    T v = (x[i] - center) * scale + shift;
    if (residual) v = v + residual[i];
    y[i] = relu ? pointwise::ReLU::f(v, T(0)) : v;
  }
}

// The gradient reaching batch norm at i: dy, or after the fused ReLU (y: its
// output, not null) dy masked by y as ReLU's backward masks it.
template <typename T>
__device__ inline T reaching(const T* dy, const T* y, int64_t i) {
  return y ? pointwise::ReLU::df(y[i], dy[i], T(0)) : dy[i];
}

// Block c: sum g and sum g * (x - mean) over channel c (g: reaching()), dweight,
// dbias, then dx, and dresidual = g when not null.
template <typename T>
__global__ void batch_norm_backward_kernel(const T* dy, const T* y, const T* x,
                                           BatchNormSizes sz, const T* weight,
                                           const T* save_mean, const T* save_invstd,
                                           bool training, T* dx, T* dweight, T* dbias,
                                           T* dresidual) {
  const int64_t c = blockIdx.x, count = sz.n * sz.s;
  const T m = save_mean[c];
  double s_dy = 0, s_dy_xc = 0;
  KILN_BLOCK_STRIDE(j, count) {
    const int64_t i = channel_index(j, c, sz);
    const double g = double(reaching(dy, y, i));
    s_dy += g;
    s_dy_xc += g * double(x[i] - m);
  }
  const double sum_dy = block_sum(s_dy), sum_dy_xc = block_sum(s_dy_xc);
  const double invstd = save_invstd[c];
  const double ac = (weight ? double(weight[c]) : 1.0) * invstd;
  if (threadIdx.x == 0) {
    dbias[c] = T(sum_dy);
    dweight[c] = T(sum_dy_xc * invstd);
  }
  const T a = T(ac);
  const T b = T(training && count > 0 ? -ac * invstd * invstd * sum_dy_xc / count : 0.0);
  const T k = T(training && count > 0 ? -ac * sum_dy / count : 0.0);
  KILN_BLOCK_STRIDE(j, count) {
    const int64_t i = channel_index(j, c, sz);
    const T g = reaching(dy, y, i);
    if (dresidual) dresidual[i] = g;
    dx[i] = g * a + (x[i] - m) * b + k;
  }
}

// Block r of `d` contiguous values: mean and 1/sqrt(var + eps), two passes in double.
template <typename T>
__device__ void row_moments(const T* xr, int64_t d, double eps, double& mean, double& inv) {
  const double count = d > 0 ? double(d) : 1.0;  // empty rows: mean 0, variance 0
  double sum = 0;
  KILN_BLOCK_STRIDE(i, d) sum += double(xr[i]);
  mean = block_sum(sum) / count;
  double m2 = 0;
  KILN_BLOCK_STRIDE(i, d) {
    const double dev = double(xr[i]) - mean;
    m2 += dev * dev;
  }
  inv = 1.0 / sqrt(block_sum(m2) / count + eps);
}

// Block r = n*G + g: the group's D values.
template <typename T>
__global__ void group_norm_forward_kernel(const T* x, T* y, GroupNormSizes sz, const T* weight,
                                          const T* bias, double eps, T* mean, T* rstd) {
  const int64_t per_group = sz.c / sz.groups, r = blockIdx.x, d = per_group * sz.s;
  const T* xg = x + r * d;
  double m, inv;
  row_moments(xg, d, eps, m, inv);
  const T center = T(m);
  if (threadIdx.x == 0) {
    mean[r] = center;
    rstd[r] = T(inv);
  }
  const int64_t c0 = (r % sz.groups) * per_group;
  KILN_BLOCK_STRIDE(i, d) {
    const int64_t c = c0 + i / sz.s;
    const double a = (weight ? double(weight[c]) : 1.0) * inv;
    const T shift = T((bias ? double(bias[c]) : 0.0) - (m - double(center)) * a);
    y[r * d + i] = (xg[i] - center) * T(a) + shift;
  }
}

// Block r = n*G + g: sums of dy*weight and dy*weight*(x - mean) over the group, then dx.
template <typename T>
__global__ void group_norm_dx_kernel(const T* dy, const T* x, GroupNormSizes sz, const T* weight,
                                     const T* mean, const T* rstd, T* dx) {
  const int64_t per_group = sz.c / sz.groups, r = blockIdx.x, d = per_group * sz.s;
  const int64_t c0 = (r % sz.groups) * per_group;
  const double m = mean[r], inv = rstd[r];
  const double count = d > 0 ? double(d) : 1.0;
  double s_dyw = 0, s_dyw_xc = 0;
  KILN_BLOCK_STRIDE(i, d) {
    const double w = weight ? double(weight[c0 + i / sz.s]) : 1.0;
    const double g = double(dy[r * d + i]) * w;
    s_dyw += g;
    s_dyw_xc += g * (double(x[r * d + i]) - m);
  }
  const double sum_dyw = block_sum(s_dyw), sum_dyw_xc = block_sum(s_dyw_xc);
  const T center = mean[r];
  const T slope = T(-inv * inv * inv * sum_dyw_xc / count);
  const T offset = T(-inv * sum_dyw / count);
  KILN_BLOCK_STRIDE(i, d) {
    const T a = T((weight ? double(weight[c0 + i / sz.s]) : 1.0) * inv);
    dx[r * d + i] = dy[r * d + i] * a + (x[r * d + i] - center) * slope + offset;
  }
}

// Block c: dbias[c] = sum over n, s of dy; dweight[c] = sum of dy * (x - mean) * rstd.
template <typename T>
__global__ void group_norm_affine_kernel(const T* dy, const T* x, GroupNormSizes sz,
                                         const T* mean, const T* rstd, T* dweight, T* dbias) {
  const int64_t c = blockIdx.x, g = c / (sz.c / sz.groups);
  double s_dy = 0, s_dy_xhat = 0;
  KILN_BLOCK_STRIDE(j, sz.n * sz.s) {
    const int64_t n = j / sz.s, i = (n * sz.c + c) * sz.s + j % sz.s;
    const int64_t r = n * sz.groups + g;
    s_dy += double(dy[i]);
    s_dy_xhat += double(dy[i]) * (double(x[i]) - double(mean[r])) * double(rstd[r]);
  }
  const double sum_dy = block_sum(s_dy), sum_dy_xhat = block_sum(s_dy_xhat);
  if (threadIdx.x == 0) {
    if (dbias) dbias[c] = T(sum_dy);
    if (dweight) dweight[c] = T(sum_dy_xhat);
  }
}

// Block r: row r of D values.
template <typename T>
__global__ void layer_norm_forward_kernel(const T* x, T* y, LayerNormSizes sz, const T* weight,
                                          const T* bias, double eps, T* mean, T* rstd) {
  const int64_t r = blockIdx.x, d = sz.cols;
  const T* xr = x + r * d;
  double m, inv;
  row_moments(xr, d, eps, m, inv);
  const T center = T(m), invt = T(inv);
  const T shift = T((m - double(center)) * inv);
  if (threadIdx.x == 0) {
    mean[r] = center;
    rstd[r] = invt;
  }
  KILN_BLOCK_STRIDE(i, d) {
    const T w = weight ? weight[i] : T(1), b = bias ? bias[i] : T(0);
    y[r * d + i] = ((xr[i] - center) * invt - shift) * w + b;
  }
}

template <typename T>
__global__ void layer_norm_dx_kernel(const T* dy, const T* x, LayerNormSizes sz, const T* weight,
                                     const T* mean, const T* rstd, T* dx) {
  const int64_t r = blockIdx.x, d = sz.cols;
  const T* dyr = dy + r * d;
  const T* xr = x + r * d;
  const double m = mean[r], inv = rstd[r];
  const double count = d > 0 ? double(d) : 1.0;
  double s_dyw = 0, s_dyw_xc = 0;
  KILN_BLOCK_STRIDE(i, d) {
    const double g = double(dyr[i]) * (weight ? double(weight[i]) : 1.0);
    s_dyw += g;
    s_dyw_xc += g * (double(xr[i]) - m);
  }
  const double sum_dyw = block_sum(s_dyw), sum_dyw_xc = block_sum(s_dyw_xc);
  const T center = mean[r], a = T(inv);
  const T slope = T(-inv * inv * inv * sum_dyw_xc / count);
  const T offset = T(-inv * sum_dyw / count);
  KILN_BLOCK_STRIDE(i, d)
  dx[r * d + i] = dyr[i] * (weight ? weight[i] : T(1)) * a + (xr[i] - center) * slope + offset;
}

// One thread per column i: sums over the rows in order.
template <typename T>
__global__ void layer_norm_affine_kernel(const T* dy, const T* x, LayerNormSizes sz,
                                         const T* mean, const T* rstd, T* dweight, T* dbias) {
  const int64_t d = sz.cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < d;
       i += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t r = 0; r < sz.rows; ++r) {
      const double g = dy[r * d + i];
      sb += g;
      sw += g * (double(x[r * d + i]) - double(mean[r])) * double(rstd[r]);
    }
    if (dweight) dweight[i] = T(sw);
    if (dbias) dbias[i] = T(sb);
  }
}

// div = k + alpha/size * sum of x[n, j, s]^2 over channel c's window, j in order.
template <typename T>
__device__ double lrn_divisor(const T* x, int64_t n, int64_t c, int64_t s,
                              const BatchNormSizes& sz, const LocalResponseNormArgs& a) {
  const int64_t first = c - a.size / 2 > 0 ? c - a.size / 2 : 0;
  const int64_t last = c + (a.size - 1) / 2 < sz.c - 1 ? c + (a.size - 1) / 2 : sz.c - 1;
  double sum = 0;
  for (int64_t j = first; j <= last; ++j) {
    const double v = x[(n * sz.c + j) * sz.s + s];
    sum += v * v;
  }
  return a.k + a.alpha / double(a.size) * sum;
}

template <typename T>
__global__ void lrn_forward_kernel(const T* x, T* y, BatchNormSizes sz, LocalResponseNormArgs a) {
  const int64_t total = sz.n * sz.c * sz.s;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = e % sz.s, c = e / sz.s % sz.c, n = e / (sz.s * sz.c);
    y[e] = T(double(x[e]) * pow(lrn_divisor(x, n, c, s, sz, a), -a.beta));
  }
}

// t = dy * x * div^(-beta-1) per value (double workspace).
template <typename T>
__global__ void lrn_backward_terms(const T* dy, const T* x, double* t, BatchNormSizes sz,
                                   LocalResponseNormArgs a) {
  const int64_t total = sz.n * sz.c * sz.s;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = e % sz.s, c = e / sz.s % sz.c, n = e / (sz.s * sz.c);
    const double div = lrn_divisor(x, n, c, s, sz, a);
    t[e] = double(dy[e]) * double(x[e]) * pow(div, -a.beta) / div;
  }
}

// dx[j] = dy[j] div[j]^-beta - 2 alpha beta / size * x[j] * sum of t[c] over the
// channels c whose window holds j: c in [j - (size-1)/2, j + size/2].
template <typename T>
__global__ void lrn_backward_dx(const T* dy, const T* x, const double* t, T* dx,
                                BatchNormSizes sz, LocalResponseNormArgs a) {
  const int64_t total = sz.n * sz.c * sz.s;
  const double coef = 2.0 * a.alpha * a.beta / double(a.size);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = e % sz.s, j = e / sz.s % sz.c, n = e / (sz.s * sz.c);
    const int64_t c0 = j - (a.size - 1) / 2 > 0 ? j - (a.size - 1) / 2 : 0;
    const int64_t c1 = j + a.size / 2 < sz.c - 1 ? j + a.size / 2 : sz.c - 1;
    double acc = 0;
    for (int64_t c = c0; c <= c1; ++c) acc += t[(n * sz.c + c) * sz.s + s];
    const T direct = T(double(dy[e]) * pow(lrn_divisor(x, n, j, s, sz, a), -a.beta));
    dx[e] = T(double(direct) - coef * double(x[e]) * acc);
  }
}

cudaStream_t current_stream() { return stream(current_device()); }

// Threads of a batch-norm block: one block per channel over N*S values, so few
// blocks; more threads each.
constexpr int kChannelThreads = 512;

unsigned blocks(int64_t n, const char* op) {
  KILN_CHECK(n <= INT_MAX, op, ": too many rows or channels (", n, ") for one launch");
  return static_cast<unsigned>(n);
}

}  // namespace

template <typename T>
void batch_norm_forward(const T* x, T* y, const BatchNormSizes& sz, const T* weight,
                        const T* bias, T* running_mean, T* running_var, bool training,
                        double momentum, double eps, T* save_mean, T* save_invstd) {
  if (sz.c == 0) return;
  batch_norm_forward_kernel<T><<<blocks(sz.c, "batch_norm"), kChannelThreads, 0,
                              current_stream()>>>(
      x, nullptr, false, y, sz, weight, bias, running_mean, running_var, training, momentum,
      eps, save_mean, save_invstd);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void batch_norm_relu_forward(const T* x, const T* residual, T* y, const BatchNormSizes& sz,
                             const T* weight, const T* bias, T* running_mean, T* running_var,
                             bool training, double momentum, double eps, T* save_mean,
                             T* save_invstd) {
  if (sz.c == 0) return;
  batch_norm_forward_kernel<T><<<blocks(sz.c, "batch_norm_relu"), kChannelThreads, 0,
                              current_stream()>>>(
      x, residual, true, y, sz, weight, bias, running_mean, running_var, training, momentum,
      eps, save_mean, save_invstd);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, const BatchNormSizes& sz, const T* weight,
                         const T* save_mean, const T* save_invstd, bool training, T* dx,
                         T* dweight, T* dbias) {
  if (sz.c == 0) return;
  batch_norm_backward_kernel<T><<<blocks(sz.c, "batch_norm_backward"), kChannelThreads, 0,
                               current_stream()>>>(dy, nullptr, x, sz, weight, save_mean,
                                                   save_invstd, training, dx, dweight, dbias,
                                                   nullptr);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void batch_norm_relu_backward(const T* dy, const T* y, const T* x, const BatchNormSizes& sz,
                              const T* weight, const T* save_mean, const T* save_invstd,
                              bool training, T* dx, T* dweight, T* dbias, T* dresidual) {
  if (sz.c == 0) return;
  batch_norm_backward_kernel<T>
      <<<blocks(sz.c, "batch_norm_relu_backward"), kChannelThreads, 0, current_stream()>>>(
          dy, y, x, sz, weight, save_mean, save_invstd, training, dx, dweight, dbias, dresidual);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void group_norm_forward(const T* x, T* y, const GroupNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd) {
  if (sz.n * sz.groups == 0) return;
  group_norm_forward_kernel<<<blocks(sz.n * sz.groups, "group_norm"), kThreads, 0,
                              current_stream()>>>(x, y, sz, weight, bias, eps, mean, rstd);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void group_norm_backward(const T* dy, const T* x, const GroupNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias) {
  if (dx && sz.n * sz.groups > 0) {
    group_norm_dx_kernel<<<blocks(sz.n * sz.groups, "group_norm_backward"), kThreads, 0,
                           current_stream()>>>(dy, x, sz, weight, mean, rstd, dx);
    KILN_CUDA_CHECK_LAUNCH();
  }
  if ((dweight || dbias) && sz.c > 0) {
    group_norm_affine_kernel<<<blocks(sz.c, "group_norm_backward"), kThreads, 0,
                               current_stream()>>>(dy, x, sz, mean, rstd, dweight, dbias);
    KILN_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void layer_norm_forward(const T* x, T* y, const LayerNormSizes& sz, const T* weight,
                        const T* bias, double eps, T* mean, T* rstd) {
  if (sz.rows == 0) return;
  layer_norm_forward_kernel<<<blocks(sz.rows, "layer_norm"), kThreads, 0, current_stream()>>>(
      x, y, sz, weight, bias, eps, mean, rstd);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, const LayerNormSizes& sz, const T* weight,
                         const T* mean, const T* rstd, T* dx, T* dweight, T* dbias) {
  if (dx && sz.rows > 0) {
    layer_norm_dx_kernel<<<blocks(sz.rows, "layer_norm_backward"), kThreads, 0,
                           current_stream()>>>(dy, x, sz, weight, mean, rstd, dx);
    KILN_CUDA_CHECK_LAUNCH();
  }
  if ((dweight || dbias) && sz.cols > 0) {
    layer_norm_affine_kernel<<<grid_for(sz.cols), kThreads, 0, current_stream()>>>(
        dy, x, sz, mean, rstd, dweight, dbias);
    KILN_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void local_response_norm_forward(const T* x, T* y, const BatchNormSizes& sz,
                                 const LocalResponseNormArgs& args) {
  const int64_t total = sz.n * sz.c * sz.s;
  if (total == 0) return;
  lrn_forward_kernel<<<grid_for(total), kThreads, 0, current_stream()>>>(x, y, sz, args);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void local_response_norm_backward(const T* dy, const T* x, T* dx, const BatchNormSizes& sz,
                                  const LocalResponseNormArgs& args) {
  const int64_t total = sz.n * sz.c * sz.s;
  if (total == 0) return;
  const int device = current_device();
  // Freed once enqueued: the one stream orders any reuse after these kernels.
  auto* t = static_cast<double*>(device_malloc(sizeof(double) * total, device));
  lrn_backward_terms<<<grid_for(total), kThreads, 0, current_stream()>>>(dy, x, t, sz, args);
  KILN_CUDA_CHECK_LAUNCH();
  lrn_backward_dx<<<grid_for(total), kThreads, 0, current_stream()>>>(dy, x, t, dx, sz, args);
  const cudaError_t launched = cudaPeekAtLastError();
  device_free(t, device);
  KILN_CUDA_CHECK(launched);
}

#define KILN_INSTANTIATE(T)                                                                \
  template void batch_norm_forward<T>(const T*, T*, const BatchNormSizes&, const T*,       \
                                      const T*, T*, T*, bool, double, double, T*, T*);     \
  template void batch_norm_backward<T>(const T*, const T*, const BatchNormSizes&, const T*, \
                                       const T*, const T*, bool, T*, T*, T*);              \
  template void batch_norm_relu_forward<T>(const T*, const T*, T*, const BatchNormSizes&,  \
                                           const T*, const T*, T*, T*, bool, double,       \
                                           double, T*, T*);                                \
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
  template void local_response_norm_backward<T>(const T*, const T*, T*,                    \
                                                const BatchNormSizes&,                     \
                                                const LocalResponseNormArgs&);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
