// Inverted dropout on the GPU (dropout.h): one thread per Philox counter writes four
// mask entries, then one thread per element applies its group's entry.
#include "cuda/dropout.h"

#include <cmath>

#include "common/rng.h"
#include "cpu/dropout.h"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

// Counter c gives entries 4c .. 4c+3; keep <=> (bits >> 8) >= ceil(p * 2^24), exactly
// the CPU's comparison.
__global__ void draw_mask(uint8_t* mask, int64_t groups, uint32_t threshold, uint64_t seed,
                          uint64_t offset) {
  const int64_t counters = (groups + 3) / 4;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < counters;
       c += int64_t(gridDim.x) * blockDim.x) {
    const auto bits = philox4x32(seed, offset + static_cast<uint64_t>(c));
    for (int j = 0; j < 4 && 4 * c + j < groups; ++j) mask[4 * c + j] = (bits[j] >> 8) >= threshold;
  }
}

// out = in * (mask[i / inner] ? scale : 0): a multiply, so NaN and inf propagate.
template <typename T>
__global__ void apply_mask(const T* in, T* out, const uint8_t* mask, int64_t n, int64_t inner,
                           T scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[i] * (mask[i / inner] ? scale : T(0));
}

template <typename T>
T keep_scale(double p) {
  return p < 1 ? T(1.0 / (1.0 - p)) : T(0);
}

}  // namespace

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t groups, int64_t inner, double p,
                     uint64_t seed, uint64_t offset) {
  check_dropout_p("dropout", p);
  if (groups == 0) return;
  cudaStream_t s = stream(current_device());
  const uint32_t threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  draw_mask<<<grid_for(dropout_counters(groups)), kThreads, 0, s>>>(mask, groups, threshold, seed,
                                                                    offset);
  KILN_CUDA_CHECK_LAUNCH();
  const int64_t n = groups * inner;
  if (n == 0) return;
  apply_mask<<<grid_for(n), kThreads, 0, s>>>(x, y, mask, n, inner, keep_scale<T>(p));
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t groups, int64_t inner,
                      double p) {
  check_dropout_p("dropout_backward", p);
  const int64_t n = groups * inner;
  if (n == 0) return;
  apply_mask<<<grid_for(n), kThreads, 0, stream(current_device())>>>(dy, dx, mask, n, inner,
                                                                     keep_scale<T>(p));
  KILN_CUDA_CHECK_LAUNCH();
}

#define KILN_INSTANTIATE(T)                                                                   \
  template void dropout_forward<T>(const T*, T*, uint8_t*, int64_t, int64_t, double, uint64_t, \
                                   uint64_t);                                                 \
  template void dropout_backward<T>(const T*, const uint8_t*, T*, int64_t, int64_t, double);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
