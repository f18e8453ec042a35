// A single-threaded GEMM on blocks that already sit in cache, for kernels that
// build their operands themselves (convolution's im2col blocks):
//
//   C[M, N] = A[M, K] . B[K, N]          (accumulate == false)
//   C[M, N] += A[M, K] . B[K, N]         (accumulate == true)
//
//   A(i, k) = a[i * a_rs + k * a_cs]     any strides: row-major (a_cs == 1) or
//                                        column-major (a_rs == 1)
//   B(k, j) = b[k * ldb + j]             rows contiguous; each row readable up to
//                                        N rounded up to a multiple of 16
//   C(i, j) = c[i * ldc + j]             only the N valid columns are written
//
// It is called from inside parallel_for chunks, one block per call. For float
// on AVX-512 it runs kiln's own register-tiled micro-kernel (MR rows of A
// broadcast against NR = 16 * NV columns of B, MR * NV accumulators); otherwise
// it falls back to kiln::gemm (OpenBLAS), which then needs a_cs == 1 or a_rs == 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace kiln::cpu {

template <typename T>
void gemm_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate);

// Zero-filled scratch memory aligned to a cache line, for operand blocks.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using Scratch = std::unique_ptr<T[], FreeDeleter>;

template <typename T>
Scratch<T> scratch(size_t count) {
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes == 0 ? 64 : bytes);
  return Scratch<T>(static_cast<T*>(p));
}

}  // namespace kiln::cpu
