// Block-wide reductions for the CUDA kernels, deterministic: a fixed tree over the
// block's threads in shared memory, so a result depends only on the data and the
// launch shape, never on scheduling (no float atomics).
//
//   block_reduce(v, op)   every thread of the block passes its v and gets
//                         op(v_0, op(v_1, ...)) in the tree's fixed order;
//                         blockDim.x must be a power of two, at most 1024
//   block_sum(v)          block_reduce(v, Add{}): the block's sum, to every thread
//
// Every thread of the block must call them; they synchronize the block, so a kernel
// may call them repeatedly.
#pragma once

#include "cuda/runtime.h"

namespace kiln::cuda {

constexpr unsigned kMaxBlockThreads = 1024;

template <typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
  static_assert(sizeof(T) <= sizeof(double), "block_reduce: scalars only");
  __shared__ alignas(alignof(double)) unsigned char raw[kMaxBlockThreads * sizeof(double)];
  T* s = reinterpret_cast<T*>(raw);
  __syncthreads();  // the previous call's readers of s[0] are done
  s[threadIdx.x] = v;
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] = op(s[threadIdx.x], s[threadIdx.x + w]);
    __syncthreads();
  }
  return s[0];
}

struct Add {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

template <typename T>
__device__ T block_sum(T v) {
  return block_reduce(v, Add{});
}

// max by a < b, so that (as on the CPU) a NaN in the first operand stays.
struct Max {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a < b ? b : a; }
};

// The grid-stride index range of the calling thread: for (i = first(); i < n; i += stride()).
__device__ inline int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace kiln::cuda
