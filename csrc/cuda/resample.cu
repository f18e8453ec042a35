// Resampling kernels on the GPU (see resample.h).
#include "cuda/resample.h"

#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

// Output e's plane and the taps of its row and column.
template <typename T>
struct OutputTaps {
  int64_t plane;
  ResampleTap<T> h, w;
};

template <typename T>
__device__ OutputTaps<T> output_taps(int64_t e, const ResampleSizes& s, const ResampleOptions& o) {
  const int64_t ow = e % s.out_w, oh = e / s.out_w % s.out_h;
  return {e / (s.out_w * s.out_h),
          resample_tap<T>(oh, s.in_h, s.out_h, o.scale_h, o.mode, o.align_corners),
          resample_tap<T>(ow, s.in_w, s.out_w, o.scale_w, o.mode, o.align_corners)};
}

template <typename T>
__global__ void resample_forward_kernel(const T* x, T* y, ResampleSizes s, ResampleOptions o) {
  const bool linear = o.mode == Resample::Bilinear;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < s.planes * s.out_h * s.out_w;
       e += int64_t(gridDim.x) * blockDim.x) {
    const OutputTaps<T> t = output_taps<T>(e, s, o);
    const T* r0 = x + (t.plane * s.in_h + t.h.i0) * s.in_w;
    const T* r1 = x + (t.plane * s.in_h + t.h.i1) * s.in_w;
    y[e] = linear ? t.h.l0 * (t.w.l0 * r0[t.w.i0] + t.w.l1 * r0[t.w.i1]) +
                        t.h.l1 * (t.w.l0 * r1[t.w.i0] + t.w.l1 * r1[t.w.i1])
                  : r0[t.w.i0];
  }
}

template <typename T>
__global__ void resample_backward_kernel(const T* dy, T* dx, ResampleSizes s, ResampleOptions o) {
  const bool linear = o.mode == Resample::Bilinear;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < s.planes * s.out_h * s.out_w;
       e += int64_t(gridDim.x) * blockDim.x) {
    const OutputTaps<T> t = output_taps<T>(e, s, o);
    T* r0 = dx + (t.plane * s.in_h + t.h.i0) * s.in_w;
    T* r1 = dx + (t.plane * s.in_h + t.h.i1) * s.in_w;
    if (!linear) {
      atomicAdd(r0 + t.w.i0, dy[e]);
      continue;
    }
    const T top = t.h.l0 * dy[e], bottom = t.h.l1 * dy[e];
    atomicAdd(r0 + t.w.i0, t.w.l0 * top);
    atomicAdd(r0 + t.w.i1, t.w.l1 * top);
    atomicAdd(r1 + t.w.i0, t.w.l0 * bottom);
    atomicAdd(r1 + t.w.i1, t.w.l1 * bottom);
  }
}

}  // namespace

template <typename T>
void resample_forward(const T* x, T* y, const ResampleSizes& s, const ResampleOptions& o) {
  check_resample_sizes("interpolate", s);
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  resample_forward_kernel<<<grid_for(total), kThreads, 0, stream(current_device())>>>(x, y, s, o);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void resample_backward(const T* dy, T* dx, const ResampleSizes& s, const ResampleOptions& o) {
  check_resample_sizes("interpolate_backward", s);
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  cudaStream_t st = stream(current_device());
  KILN_CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * s.planes * s.in_h * s.in_w, st));
  resample_backward_kernel<<<grid_for(total), kThreads, 0, st>>>(dy, dx, s, o);
  KILN_CUDA_CHECK_LAUNCH();
}

#define KILN_INSTANTIATE(T)                                                                   \
  template void resample_forward<T>(const T*, T*, const ResampleSizes&, const ResampleOptions&); \
  template void resample_backward<T>(const T*, T*, const ResampleSizes&, const ResampleOptions&);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
