#include "cpu/gemm_tile.h"

#include <algorithm>
#include <array>
#include <utility>

#include "common/blas.h"
#include "common/check.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kiln::cpu {
namespace {

// The BLAS fallback: A must be row-major or column-major.
template <typename T>
void blas_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  // BLAS wants the leading dimension to cover a row even where only one row exists.
  const T beta = accumulate ? T(1) : T(0);
  if (a_cs == 1 && (M == 1 || a_rs >= K))
    gemm(false, false, M, N, K, T(1), a, M == 1 ? std::max<int64_t>(K, 1) : a_rs, b, ldb, beta,
         c, ldc);
  else if (a_rs == 1 && (K == 1 || a_cs >= M))
    gemm(true, false, M, N, K, T(1), a, K == 1 ? std::max<int64_t>(M, 1) : a_cs, b, ldb, beta,
         c, ldc);
  else
    fail("gemm_tile: A needs a unit stride, got strides (", a_rs, ", ", a_cs, ")");
}

#ifdef __AVX512F__

// One MR x (16 * NV) tile of C, all K steps in registers. Each step loads NV
// vectors of B and broadcasts MR scalars of A: MR * NV FMAs per MR + NV loads,
// so with MR * NV = 24 the two FMA pipes, not the loads, are the limit.
template <int MR, int NV>
void micro(int64_t K, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
           float* c, int64_t ldc, int64_t n_valid, bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * a_rs]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
    a += a_cs;
    b += ldb;
  }
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const int64_t left = n_valid - 16 * j;
    mask[j] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0)
                                                          : __mmask16((1u << left) - 1);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* dst = c + i * ldc + 16 * j;
      __m512 v = acc[i][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[j], dst));
      _mm512_mask_storeu_ps(dst, mask[j], v);
    }
}

using Micro = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                       int64_t, int64_t, bool);

// Rows per tile for each width NV = 1..4: about 24 accumulators, leaving
// registers for the B vectors and the broadcast.
constexpr std::array<int, 4> kRows = {12, 12, 8, 6};

template <int NV, int... R>
constexpr std::array<Micro, sizeof...(R)> row_variants(std::integer_sequence<int, R...>) {
  return {&micro<R + 1, NV>...};
}

// kMicro[NV - 1][rows - 1]: the full tile and every shorter one for the last rows.
const std::array<Micro, 12> kMicro1 = row_variants<1>(std::make_integer_sequence<int, 12>());
const std::array<Micro, 12> kMicro2 = row_variants<2>(std::make_integer_sequence<int, 12>());
const std::array<Micro, 8> kMicro3 = row_variants<3>(std::make_integer_sequence<int, 8>());
const std::array<Micro, 6> kMicro4 = row_variants<4>(std::make_integer_sequence<int, 6>());

Micro micro_for(int nv, int rows) {
  switch (nv) {
    case 1: return kMicro1[rows - 1];
    case 2: return kMicro2[rows - 1];
    case 3: return kMicro3[rows - 1];
    default: return kMicro4[rows - 1];
  }
}

// Rows of B per pass: a 64-column panel of KC rows (64 KiB at most) stays in
// L1/L2 while every row tile of A streams past it.
static const int64_t kKc = std::getenv("KC") ? std::atoll(std::getenv("KC")) : 256;

#endif  // __AVX512F__

}  // namespace

template <>
void gemm_tile<float>(int64_t M, int64_t N, int64_t K, const float* a, int64_t a_rs,
                      int64_t a_cs, const float* b, int64_t ldb, float* c, int64_t ldc,
                      bool accumulate) {
#ifdef __AVX512F__
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const bool acc = accumulate || k0 > 0;
    for (int64_t j0 = 0; j0 < N; j0 += 64) {
      const int64_t cols = std::min<int64_t>(64, N - j0);
      const int nv = static_cast<int>((cols + 15) / 16);
      const int mr = kRows[nv - 1];
      for (int64_t i0 = 0; i0 < M; i0 += mr) {
        const int rows = static_cast<int>(std::min<int64_t>(mr, M - i0));
        micro_for(nv, rows)(kc, a + i0 * a_rs + k0 * a_cs, a_rs, a_cs, b + k0 * ldb + j0, ldb,
                            c + i0 * ldc + j0, ldc, cols, acc);
      }
    }
  }
#else
  blas_tile<float>(M, N, K, a, a_rs, a_cs, b, ldb, c, ldc, accumulate);
#endif
}

template <>
void gemm_tile<double>(int64_t M, int64_t N, int64_t K, const double* a, int64_t a_rs,
                       int64_t a_cs, const double* b, int64_t ldb, double* c, int64_t ldc,
                       bool accumulate) {
  blas_tile<double>(M, N, K, a, a_rs, a_cs, b, ldb, c, ldc, accumulate);
}

}  // namespace kiln::cpu
