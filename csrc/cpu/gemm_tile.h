// Single-threaded matrix products on blocks that already sit in cache, for
// kernels that address their operands themselves (convolution). Called from
// inside parallel_for chunks, one block per call.
//
// tap_gemm: a sum of products whose A operands are shifted windows of one array,
//
//   C[M, N] (+)= sum_{t < taps} A_t[M, K] . B_t[K, N]
//   A_t(i, k) = a[rows[i] + tap[t] + k * a_cs]   (rows, tap: element offsets)
//   B_t(k, j) = b[t * b_tap + k * ldb + j]       (rows contiguous; each readable up
//                                                 to N rounded up to a multiple of 16)
//   C(i, j)   = c[i * ldc + j]                   (only the N valid columns are written)
//
// A direct convolution is one tap_gemm per block of output pixels: rows[i] is
// where pixel i's window starts in the padded input, tap[t] the offset of
// kernel tap (r, s), a_cs the channel-plane stride, and B the weights; so the
// im2col matrix is never built. For float on AVX-512 or AVX2 (simd.h) it runs
// kiln's register-tiled micro-kernel (MR rows of A broadcast against
// NR = kLanes * NV columns of B, MR * NV accumulators, the whole sum in
// registers); has_fast_tile<T>() says so. Otherwise it is a plain loop nest,
// correct but slow.
//
// gemm_tile: one product with A(i, k) = a[i * a_rs + k * a_cs]; the micro-kernel
// where there is one (except large products on AVX2), kiln::gemm (OpenBLAS)
// otherwise, which then needs a_cs == 1 or a_rs == 1.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "cpu/simd.h"

namespace kiln::cpu {

template <typename T>
constexpr bool has_fast_tile() {
  return simd::kFloatVec && std::is_same_v<T, float>;
}

template <typename T>
void tap_gemm(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a, const int64_t* rows,
              const int64_t* tap, int64_t a_cs, const T* b, int64_t b_tap, int64_t ldb, T* c,
              int64_t ldc, bool accumulate);

// tap_gemm with B packed by pack_b: each panel of columns the micro-kernel
// streams (at most 64 wide) stored contiguously, tap after tap and row after row,
// zero-filled to whole vectors. A B that many calls share (a layer's weights) is
// packed once; its panels are then read sequentially, not ldb apart (with
// hundreds of channels every row of a panel would be on its own page).
// pack_b reads B_t(k, j) = b[t * b_tap + k * ldb + j * b_js] (any strides: a
// layer's weights are packed straight from their (K, C, R, S) layout) into bp,
// packed_b_size<T>(N, K, taps) elements, splitting the work over the pool. Within
// a panel the rows run tap after tap, so B packed as `taps` taps of K rows is
// also B as taps / m taps of m * K rows (a conv's kernel rows taken as one tap).
template <typename T>
int64_t packed_b_size(int64_t N, int64_t K, int64_t taps);

template <typename T>
void pack_b(int64_t N, int64_t K, int64_t taps, const T* b, int64_t b_tap, int64_t ldb,
            int64_t b_js, T* bp);

template <typename T>
void tap_gemm_packed(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a,
                     const int64_t* rows, const int64_t* tap, int64_t a_cs, const T* bp, T* c,
                     int64_t ldc, bool accumulate);

template <typename T>
void gemm_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate);

// Zero-filled scratch memory aligned to a cache line, for operand blocks.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using Scratch = std::unique_ptr<T[], FreeDeleter>;

// scratch_unfilled leaves out the zero fill, for a buffer whose every element read
// is written first (a large one's fill would cost a pass over memory).
template <typename T>
Scratch<T> scratch_unfilled(size_t count) {
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  return Scratch<T>(static_cast<T*>(p));
}

template <typename T>
Scratch<T> scratch(size_t count) {
  Scratch<T> s = scratch_unfilled<T>(count);
  std::memset(s.get(), 0, std::max<size_t>((count * sizeof(T) + 63) / 64 * 64, 64));
  return s;
}

}  // namespace kiln::cpu
