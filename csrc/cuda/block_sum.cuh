// A deterministic sum over one block's threads (device code only): every thread
// passes its partial sum, thread 0 gets the total. The tree is fixed by the block
// size, so a kernel that assigns values to threads by index alone gives the same
// bits on every run (no atomics). Every thread of the block must call it; it
// synchronizes the block, so a block may call it repeatedly.
#pragma once

namespace kiln::cuda {

// blockDim.x must be a power of two no larger than 1024 (kThreads is).
template <typename A>
__device__ A block_sum(A value) {
  __shared__ A partial[1024];
  const unsigned t = threadIdx.x;
  partial[t] = value;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) partial[t] += partial[t + half];
    __syncthreads();
  }
  const A total = partial[0];
  __syncthreads();  // partial may be reused by the next call
  return total;
}

}  // namespace kiln::cuda
