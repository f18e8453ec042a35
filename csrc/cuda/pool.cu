// 2-D pooling kernels on the GPU (see pool.h).
#include "cuda/pool.h"

#include <cmath>

#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

#define KILN_GRID_STRIDE(e, total)                                                 \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (total); \
       e += int64_t(gridDim.x) * blockDim.x)

template <typename T>
__device__ inline bool takes_max(T v, T current) {
  return v > current || v != v;
}

template <typename T>
__device__ inline T neg_inf() {
  return -T(INFINITY);
}

__device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Smallest j >= 0 with a + j*step >= bound (step > 0): the first tap inside.
__device__ inline int64_t first_reaching(int64_t a, int64_t step, int64_t bound) {
  return a >= bound ? 0 : (bound - a + step - 1) / step;
}

// Taps [first, last) of a window starting at `start` that land inside [0, in).
__device__ inline void taps_inside(int64_t start, int64_t in, int64_t kernel, int64_t dilation,
                                   int64_t& first, int64_t& last) {
  first = imin(kernel, first_reaching(start, dilation, 0));
  last = imax(first, imin(kernel, first_reaching(start, dilation, in)));
}

template <typename T>
__global__ void max_pool_kernel(const T* x, T* y, int64_t* indices, Pool2dSizes s,
                                Pool2dWindow w) {
  KILN_GRID_STRIDE(o, s.planes * s.out_h * s.out_w) {
    const int64_t ow = o % s.out_w, oh = o / s.out_w % s.out_h, p = o / (s.out_w * s.out_h);
    const int64_t h0 = oh * w.stride[0] - w.padding[0], w0 = ow * w.stride[1] - w.padding[1];
    int64_t r0, r1, c0, c1;
    taps_inside(h0, s.in_h, w.kernel[0], w.dilation[0], r0, r1);
    taps_inside(w0, s.in_w, w.kernel[1], w.dilation[1], c0, c1);
    const T* xp = x + p * s.in_h * s.in_w;
    T best = neg_inf<T>();
    // The first in-bounds tap when every value is -inf; -1 for a window all padding.
    int64_t arg = r0 < r1 && c0 < c1 ? (h0 + r0 * w.dilation[0]) * s.in_w + w0 + c0 * w.dilation[1]
                                     : -1;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t ih = h0 + r * w.dilation[0];
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t at = ih * s.in_w + w0 + c * w.dilation[1];
        const T v = xp[at];
        if (takes_max(v, best)) best = v, arg = at;
      }
    }
    y[o] = best;
    if (indices) indices[o] = arg;
  }
}

// dx (zeroed) [plane][indices] += dy; indices outside the plane are skipped.
template <typename T>
__global__ void max_pool_backward_kernel(const T* dy, const int64_t* indices, T* dx,
                                         Pool2dSizes s) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  KILN_GRID_STRIDE(o, s.planes * out_plane) {
    const int64_t i = indices[o];
    if (i >= 0 && i < in_plane) atomicAdd(dx + o / out_plane * in_plane + i, dy[o]);
  }
}

// avg_pool2d's divisor of output (oh, ow), as cpu/pool.cpp's avg_divisors; 0 for a
// window wholly in padding.
__device__ inline int64_t avg_divisor(int64_t oh, int64_t ow, const Pool2dSizes& s,
                                      const Pool2dWindow& w, bool count_include_pad,
                                      bool has_override, int64_t divisor_override) {
  int64_t pool[2], valid[2];
  const int64_t o[2] = {oh, ow}, in[2] = {s.in_h, s.in_w};
  for (int d = 0; d < 2; ++d) {
    const int64_t start = o[d] * w.stride[d] - w.padding[d];
    const int64_t end = imin(start + w.kernel[d], in[d] + w.padding[d]);
    pool[d] = end - start;
    valid[d] = imin(end, in[d]) - imax(start, 0);
  }
  if (valid[0] <= 0 || valid[1] <= 0) return 0;
  if (has_override) return divisor_override;
  return count_include_pad ? pool[0] * pool[1] : valid[0] * valid[1];
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, T* y, Pool2dSizes s, Pool2dWindow w,
                                bool count_include_pad, bool has_override,
                                int64_t divisor_override) {
  KILN_GRID_STRIDE(o, s.planes * s.out_h * s.out_w) {
    const int64_t ow = o % s.out_w, oh = o / s.out_w % s.out_h, p = o / (s.out_w * s.out_h);
    const int64_t h0 = oh * w.stride[0] - w.padding[0], w0 = ow * w.stride[1] - w.padding[1];
    int64_t r0, r1, c0, c1;
    taps_inside(h0, s.in_h, w.kernel[0], 1, r0, r1);
    taps_inside(w0, s.in_w, w.kernel[1], 1, c0, c1);
    const T* xp = x + p * s.in_h * s.in_w;
    T sum = 0;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) sum += xp[(h0 + r) * s.in_w + w0 + c];
    const T div = T(avg_divisor(oh, ow, s, w, count_include_pad, has_override, divisor_override));
    y[o] = div != T(0) ? sum / div : T(0);
  }
}

// One thread per input element: the shares dy / div of the windows covering it.
template <typename T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, Pool2dSizes s, Pool2dWindow w,
                                         bool count_include_pad, bool has_override,
                                         int64_t divisor_override) {
  KILN_GRID_STRIDE(e, s.planes * s.in_h * s.in_w) {
    const int64_t iw = e % s.in_w, ih = e / s.in_w % s.in_h, p = e / (s.in_w * s.in_h);
    // Outputs oh with oh*stride - pad <= ih < oh*stride - pad + kernel (W alike).
    const int64_t h_top = ih + w.padding[0] - w.kernel[0] + 1;
    const int64_t w_top = iw + w.padding[1] - w.kernel[1] + 1;
    const int64_t oh0 = h_top > 0 ? (h_top + w.stride[0] - 1) / w.stride[0] : 0;
    const int64_t ow0 = w_top > 0 ? (w_top + w.stride[1] - 1) / w.stride[1] : 0;
    const int64_t oh1 = imin(s.out_h - 1, (ih + w.padding[0]) / w.stride[0]);
    const int64_t ow1 = imin(s.out_w - 1, (iw + w.padding[1]) / w.stride[1]);
    const T* dyp = dy + p * s.out_h * s.out_w;
    T acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const T div =
            T(avg_divisor(oh, ow, s, w, count_include_pad, has_override, divisor_override));
        if (div != T(0)) acc += dyp[oh * s.out_w + ow] / div;
      }
    dx[e] = acc;
  }
}

// Adaptive windows: [floor(o*in/out), ceil((o+1)*in/out)).
__device__ inline int64_t window_start(int64_t o, int64_t in, int64_t out) { return o * in / out; }
__device__ inline int64_t window_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

template <typename T>
__global__ void adaptive_avg_kernel(const T* x, T* y, Pool2dSizes s) {
  KILN_GRID_STRIDE(o, s.planes * s.out_h * s.out_w) {
    const int64_t ow = o % s.out_w, oh = o / s.out_w % s.out_h, p = o / (s.out_w * s.out_h);
    const int64_t h0 = window_start(oh, s.in_h, s.out_h), h1 = window_end(oh, s.in_h, s.out_h);
    const int64_t w0 = window_start(ow, s.in_w, s.out_w), w1 = window_end(ow, s.in_w, s.out_w);
    const T* xp = x + p * s.in_h * s.in_w;
    double sum = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += double(xp[ih * s.in_w + iw]);
    y[o] = T(sum / double((h1 - h0) * (w1 - w0)));
  }
}

// One thread per input element; windows containing ih start at oh = ih*out/in.
template <typename T>
__global__ void adaptive_avg_backward_kernel(const T* dy, T* dx, Pool2dSizes s) {
  KILN_GRID_STRIDE(e, s.planes * s.in_h * s.in_w) {
    const int64_t iw = e % s.in_w, ih = e / s.in_w % s.in_h, p = e / (s.in_w * s.in_h);
    const T* dyp = dy + p * s.out_h * s.out_w;
    T acc = 0;
    for (int64_t oh = ih * s.out_h / s.in_h;
         oh < s.out_h && window_start(oh, s.in_h, s.out_h) <= ih; ++oh) {
      const int64_t h0 = window_start(oh, s.in_h, s.out_h), h1 = window_end(oh, s.in_h, s.out_h);
      if (ih >= h1) continue;
      for (int64_t ow = iw * s.out_w / s.in_w;
           ow < s.out_w && window_start(ow, s.in_w, s.out_w) <= iw; ++ow) {
        const int64_t w0 = window_start(ow, s.in_w, s.out_w),
                      w1 = window_end(ow, s.in_w, s.out_w);
        if (iw >= w1) continue;
        acc += dyp[oh * s.out_w + ow] / T((h1 - h0) * (w1 - w0));
      }
    }
    dx[e] = acc;
  }
}

template <typename T>
__global__ void adaptive_max_kernel(const T* x, T* y, int64_t* indices, Pool2dSizes s) {
  KILN_GRID_STRIDE(o, s.planes * s.out_h * s.out_w) {
    const int64_t ow = o % s.out_w, oh = o / s.out_w % s.out_h, p = o / (s.out_w * s.out_h);
    const int64_t h0 = window_start(oh, s.in_h, s.out_h), h1 = window_end(oh, s.in_h, s.out_h);
    const int64_t w0 = window_start(ow, s.in_w, s.out_w), w1 = window_end(ow, s.in_w, s.out_w);
    const T* xp = x + p * s.in_h * s.in_w;
    T best = neg_inf<T>();
    int64_t arg = h0 * s.in_w + w0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) {
        const T v = xp[ih * s.in_w + iw];
        if (takes_max(v, best)) best = v, arg = ih * s.in_w + iw;
      }
    y[o] = best;
    indices[o] = arg;
  }
}

// Window i's start along one dimension (PyTorch's generate_intervals, in T), or -1
// when the sample u puts it outside the input.
template <typename T>
__device__ int64_t fractional_start(T u, int64_t i, int64_t in, int64_t out, int64_t kernel) {
  if (i == out - 1) return in - kernel;
  const T alpha = static_cast<T>(in - kernel) / static_cast<T>(out - 1);
  const T base = u * alpha, pos = (static_cast<T>(i) + u) * alpha;
  const double limit = 4611686018427387904.0;  // 2^62: converts to an integer
  if (!(fabs(double(base)) < limit) || !(fabs(double(pos)) < limit)) return -1;
  const int64_t start = static_cast<int64_t>(pos) - static_cast<int64_t>(base);
  return start >= 0 && start <= in - kernel ? start : -1;
}

template <typename T>
__global__ void fractional_max_kernel(const T* x, const T* samples, T* y, int64_t* indices,
                                      Pool2dSizes s, int64_t kernel_h, int64_t kernel_w) {
  KILN_GRID_STRIDE(o, s.planes * s.out_h * s.out_w) {
    const int64_t ow = o % s.out_w, oh = o / s.out_w % s.out_h, p = o / (s.out_w * s.out_h);
    const int64_t h0 = fractional_start(samples[2 * p + 1], oh, s.in_h, s.out_h, kernel_h);
    const int64_t w0 = fractional_start(samples[2 * p], ow, s.in_w, s.out_w, kernel_w);
    if (h0 < 0 || w0 < 0) {
      y[o] = T(NAN);
      indices[o] = -1;
      continue;
    }
    const T* xp = x + p * s.in_h * s.in_w;
    T best = neg_inf<T>();
    int64_t arg = h0 * s.in_w + w0;
    for (int64_t ih = h0; ih < h0 + kernel_h; ++ih)
      for (int64_t iw = w0; iw < w0 + kernel_w; ++iw) {
        const T v = xp[ih * s.in_w + iw];
        if (takes_max(v, best)) best = v, arg = ih * s.in_w + iw;
      }
    y[o] = best;
    indices[o] = arg;
  }
}

cudaStream_t current_stream() { return stream(current_device()); }

int64_t outputs(const Pool2dSizes& s) { return s.planes * s.out_h * s.out_w; }
int64_t inputs(const Pool2dSizes& s) { return s.planes * s.in_h * s.in_w; }

}  // namespace

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s,
                        const Pool2dWindow& win) {
  if (outputs(s) == 0) return;
  max_pool_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(x, y, indices, s, win);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void max_pool2d_backward(const char*, const T* dy, const int64_t* indices, T* dx,
                         const Pool2dSizes& s) {
  if (inputs(s) == 0) return;
  KILN_CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * inputs(s), current_stream()));
  if (outputs(s) == 0) return;
  max_pool_backward_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(dy, indices,
                                                                                   dx, s);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s, const Pool2dWindow& win,
                        bool count_include_pad, std::optional<int64_t> divisor_override) {
  check_divisor_override("avg_pool2d", divisor_override);
  if (outputs(s) == 0) return;
  avg_pool_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(
      x, y, s, win, count_include_pad, divisor_override.has_value(), divisor_override.value_or(0));
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s, const Pool2dWindow& win,
                         bool count_include_pad, std::optional<int64_t> divisor_override) {
  check_divisor_override("avg_pool2d_backward", divisor_override);
  if (inputs(s) == 0) return;
  avg_pool_backward_kernel<<<grid_for(inputs(s)), kThreads, 0, current_stream()>>>(
      dy, dx, s, win, count_include_pad, divisor_override.has_value(),
      divisor_override.value_or(0));
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s) {
  if (outputs(s) == 0) return;
  adaptive_avg_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(x, y, s);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s) {
  if (inputs(s) == 0) return;
  if (outputs(s) == 0) {  // no windows: no gradient
    KILN_CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * inputs(s), current_stream()));
    return;
  }
  adaptive_avg_backward_kernel<<<grid_for(inputs(s)), kThreads, 0, current_stream()>>>(dy, dx, s);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void adaptive_max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s) {
  if (outputs(s) == 0) return;
  adaptive_max_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(x, y, indices, s);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void fractional_max_pool2d_forward(const T* x, const T* samples, T* y, int64_t* indices,
                                   const Pool2dSizes& s, int64_t kernel_h, int64_t kernel_w) {
  if (outputs(s) == 0) return;
  fractional_max_kernel<<<grid_for(outputs(s)), kThreads, 0, current_stream()>>>(
      x, samples, y, indices, s, kernel_h, kernel_w);
  KILN_CUDA_CHECK_LAUNCH();
}

#define KILN_INSTANTIATE(T)                                                                   \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dSizes&,             \
                                      const Pool2dWindow&);                                   \
  template void max_pool2d_backward<T>(const char*, const T*, const int64_t*, T*,             \
                                       const Pool2dSizes&);                                   \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dSizes&, const Pool2dWindow&,  \
                                      bool, std::optional<int64_t>);                          \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dSizes&, const Pool2dWindow&, \
                                       bool, std::optional<int64_t>);                         \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, const Pool2dSizes&);             \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, const Pool2dSizes&);            \
  template void adaptive_max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dSizes&);  \
  template void fractional_max_pool2d_forward<T>(const T*, const T*, T*, int64_t*,            \
                                                 const Pool2dSizes&, int64_t, int64_t);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
