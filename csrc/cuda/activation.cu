// Activations on the GPU (cuda/activation.h): the pointwise ops through
// cpu/pointwise.h's structs, softmax/log_softmax and prelu.
#include "cuda/activation.h"

#include <cmath>

#include "common/check.h"
#include "cpu/vmath.h"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

template <typename Op, typename T>
__global__ void pointwise_forward_kernel(T param, const T* x, T* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = Op::f(x[i], param);
}

template <typename Op, typename T>
__global__ void pointwise_backward_kernel(T param, const T* saved, const T* dy, T* dx, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dx[i] = Op::df(saved[i], dy[i], param);
}

void check_sizes(const char* op, int64_t a, int64_t b, int64_t c) {
  KILN_CHECK(a >= 0 && b >= 0 && c >= 0, op, ": negative size in (", a, ", ", b, ", ", c, ")");
}

}  // namespace

template <typename T>
void pointwise_forward(Pointwise op, T param, const T* x, T* y, int64_t n) {
  KILN_CHECK(n >= 0, "pointwise_forward: negative element count ", n);
  if (n == 0) return;
  cudaStream_t s = stream(current_device());
  visit_pointwise(op, [&](auto o) {
    pointwise_forward_kernel<decltype(o)><<<grid_for(n), kThreads, 0, s>>>(param, x, y, n);
  });
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void pointwise_backward(Pointwise op, T param, const T* saved, const T* dy, T* dx, int64_t n) {
  KILN_CHECK(n >= 0, "pointwise_backward: negative element count ", n);
  if (n == 0) return;
  cudaStream_t s = stream(current_device());
  visit_pointwise(op, [&](auto o) {
    pointwise_backward_kernel<decltype(o)><<<grid_for(n), kThreads, 0, s>>>(param, saved, dy, dx,
                                                                           n);
  });
  KILN_CUDA_CHECK_LAUNCH();
}

// ---- prelu

namespace {

template <typename T>
__device__ T prelu_slope(const T* w, int64_t i, int64_t channels, int64_t inner,
                         int64_t weight_numel) {
  return w[weight_numel == 1 ? 0 : (i / inner) % channels];
}

template <typename T>
__global__ void prelu_forward_kernel(const T* x, const T* w, T* y, int64_t n, int64_t channels,
                                     int64_t inner, int64_t weight_numel) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const T a = prelu_slope(w, i, channels, inner, weight_numel);
    y[i] = x[i] > T(0) ? x[i] : a * x[i];
  }
}

template <typename T>
__global__ void prelu_input_grad(const T* x, const T* w, const T* dy, T* dx, int64_t n,
                                 int64_t channels, int64_t inner, int64_t weight_numel) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const T a = prelu_slope(w, i, channels, inner, weight_numel);
    dx[i] = x[i] > T(0) ? dy[i] : a * dy[i];
  }
}

// Block c: sum over (outer, inner) of [x <= 0] x dy for channel c, in double; into
// dw[c] (one weight per channel) or partial[c] (one weight for all).
template <typename T>
__global__ void prelu_channel_sums(const T* x, const T* dy, T* dw, double* partial, int64_t outer,
                                   int64_t channels, int64_t inner) {
  const int64_t per_channel = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double s = 0;
    for (int64_t j = threadIdx.x; j < per_channel; j += blockDim.x) {
      const int64_t idx = ((j / inner) * channels + c) * inner + j % inner;
      s += x[idx] > T(0) ? 0.0 : double(x[idx] * dy[idx]);
    }
    s = block_reduce(s, Add{});
    if (threadIdx.x == 0) {
      if (partial) partial[c] = s;
      else dw[c] = T(s);
    }
  }
}

// One block: dw[0] = sum_c partial[c].
template <typename T>
__global__ void prelu_sum_channels(const double* partial, int64_t channels, T* dw) {
  double s = 0;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) s += partial[c];
  s = block_reduce(s, Add{});
  if (threadIdx.x == 0) dw[0] = T(s);
}

void check_prelu(const char* op, int64_t outer, int64_t channels, int64_t inner,
                 int64_t weight_numel) {
  check_sizes(op, outer, channels, inner);
  KILN_CHECK(weight_numel == 1 || weight_numel == channels, op, ": weight has ", weight_numel,
             " elements but the input has ", channels, " channels (expected 1 or ", channels, ")");
}

}  // namespace

template <typename T>
void prelu_forward(const T* x, const T* w, T* y, int64_t outer, int64_t channels, int64_t inner,
                   int64_t weight_numel) {
  check_prelu("prelu_forward", outer, channels, inner, weight_numel);
  const int64_t n = outer * channels * inner;
  if (n == 0) return;
  prelu_forward_kernel<<<grid_for(n), kThreads, 0, stream(current_device())>>>(
      x, w, y, n, channels, inner, weight_numel);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void prelu_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t outer,
                    int64_t channels, int64_t inner, int64_t weight_numel) {
  check_prelu("prelu_backward", outer, channels, inner, weight_numel);
  const int device = current_device();
  cudaStream_t s = stream(device);
  const int64_t n = outer * channels * inner;
  if (dx && n > 0) {
    prelu_input_grad<<<grid_for(n), kThreads, 0, s>>>(x, w, dy, dx, n, channels, inner,
                                                      weight_numel);
    KILN_CUDA_CHECK_LAUNCH();
  }
  if (!dw) return;
  const unsigned blocks =
      static_cast<unsigned>(channels < 1 ? 1 : channels > 65535 ? 65535 : channels);
  if (weight_numel == channels) {  // channels >= 1 here
    prelu_channel_sums<<<blocks, kThreads, 0, s>>>(x, dy, dw, static_cast<double*>(nullptr),
                                                   outer, channels, inner);
    KILN_CUDA_CHECK_LAUNCH();
    return;
  }
  // One weight: per-channel sums, then their sum. The scratch block goes back to the
  // cache at once: the next user of it runs later on the same stream.
  auto* partial = static_cast<double*>(device_malloc(sizeof(double) * (channels + 1), device));
  prelu_channel_sums<<<blocks, kThreads, 0, s>>>(x, dy, dw, partial, outer, channels, inner);
  KILN_CUDA_CHECK_LAUNCH();
  prelu_sum_channels<<<1, kThreads, 0, s>>>(partial, channels, dw);
  device_free(partial, device);
  KILN_CUDA_CHECK_LAUNCH();
}

// ---- softmax and log_softmax

namespace {

// inner == 1: block r handles row r (dim contiguous elements).
template <typename T>
__global__ void softmax_rows(const T* x, T* y, int64_t rows, int64_t dim, bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xs = x + r * dim;
    T* ys = y + r * dim;
    T m = xs[0];
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) m = Max{}(m, xs[d]);
    m = block_reduce(m, Max{});
    T s = 0;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += vmath::exp(xs[d] - m);
    s = block_reduce(s, Add{});
    if (log) {  // (x - m) - log(s), as the CPU
      const T ls = std::log(s);
      for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) ys[d] = (xs[d] - m) - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) ys[d] = vmath::exp(xs[d] - m) * inv;
    }
  }
}

// inner > 1: thread per column (o, i), elements base + d * inner.
template <typename T>
__global__ void softmax_columns(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner,
                                bool log) {
  for (int64_t c = first_index(); c < outer * inner; c += grid_stride()) {
    const int64_t base = (c / inner) * dim * inner + c % inner;
    const T* xs = x + base;
    T* ys = y + base;
    T m = xs[0];
    for (int64_t d = 1; d < dim; ++d) m = Max{}(m, xs[d * inner]);
    T s = 0;
    for (int64_t d = 0; d < dim; ++d) s += vmath::exp(xs[d * inner] - m);
    if (log) {
      const T ls = std::log(s);
      for (int64_t d = 0; d < dim; ++d) ys[d * inner] = (xs[d * inner] - m) - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t d = 0; d < dim; ++d) ys[d * inner] = vmath::exp(xs[d * inner] - m) * inv;
    }
  }
}

// dx = dy - exp(y) sum(dy)  (log)   or   y (dy - sum(dy y)).
template <typename T>
__device__ T softmax_grad_term(T y, T g, bool log) {
  return log ? g : g * y;
}
template <typename T>
__device__ T softmax_grad(T y, T g, T s, bool log) {
  return log ? g - vmath::exp(y) * s : y * (g - s);
}

template <typename T>
__global__ void softmax_backward_rows(const T* y, const T* dy, T* dx, int64_t rows, int64_t dim,
                                      bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *ys = y + r * dim, *gs = dy + r * dim;
    T* xs = dx + r * dim;
    T s = 0;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
      s += softmax_grad_term(ys[d], gs[d], log);
    s = block_reduce(s, Add{});
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
      xs[d] = softmax_grad(ys[d], gs[d], s, log);
  }
}

template <typename T>
__global__ void softmax_backward_columns(const T* y, const T* dy, T* dx, int64_t outer,
                                         int64_t dim, int64_t inner, bool log) {
  for (int64_t c = first_index(); c < outer * inner; c += grid_stride()) {
    const int64_t base = (c / inner) * dim * inner + c % inner;
    T s = 0;
    for (int64_t d = 0; d < dim; ++d)
      s += softmax_grad_term(y[base + d * inner], dy[base + d * inner], log);
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t k = base + d * inner;
      dx[k] = softmax_grad(y[k], dy[k], s, log);
    }
  }
}

unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows > 65535 * 4 ? 65535 * 4 : rows);
}

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  check_sizes(log ? "log_softmax_forward" : "softmax_forward", outer, dim, inner);
  if (dim == 0 || outer * inner == 0) return;
  cudaStream_t s = stream(current_device());
  if (inner == 1)
    softmax_rows<<<row_blocks(outer), kThreads, 0, s>>>(x, y, outer, dim, log);
  else
    softmax_columns<<<grid_for(outer * inner), kThreads, 0, s>>>(x, y, outer, dim, inner, log);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner,
                      bool log) {
  check_sizes(log ? "log_softmax_backward" : "softmax_backward", outer, dim, inner);
  if (dim == 0 || outer * inner == 0) return;
  cudaStream_t s = stream(current_device());
  if (inner == 1)
    softmax_backward_rows<<<row_blocks(outer), kThreads, 0, s>>>(y, dy, dx, outer, dim, log);
  else
    softmax_backward_columns<<<grid_for(outer * inner), kThreads, 0, s>>>(y, dy, dx, outer, dim,
                                                                          inner, log);
  KILN_CUDA_CHECK_LAUNCH();
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

}  // namespace kiln::cuda
