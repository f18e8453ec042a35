#include "cpu/gemm_tile.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "common/blas.h"
#include "common/check.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kiln::cpu {
namespace {

// The definition, as a loop nest whose inner loop runs along contiguous B and C rows.
template <typename T>
void tap_gemm_loops(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a,
                    const int64_t* rows, const int64_t* tap, int64_t a_cs, const T* b,
                    int64_t b_tap, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* out = c + i * ldc;
    if (!accumulate) std::fill(out, out + N, T(0));
    for (int64_t t = 0; t < taps; ++t) {
      const T* ai = a + rows[i] + tap[t];
      for (int64_t k = 0; k < K; ++k) {
        const T av = ai[k * a_cs];
        const T* bk = b + t * b_tap + k * ldb;
        for (int64_t j = 0; j < N; ++j) out[j] += av * bk[j];
      }
    }
  }
}

// kiln::gemm (OpenBLAS) for one product; A must be row-major or column-major.
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

// One MR x (16 * NV) tile of C, the whole sum in registers. Each step loads NV
// vectors of B and broadcasts MR scalars of A: MR * NV FMAs per MR + NV loads,
// so with MR * NV = 24 the two FMA pipes, not the loads, are the limit.
template <int MR, int NV>
void micro(int64_t taps, const int64_t* tap, int64_t K, const float* a, const int64_t* rows,
           int64_t a_cs, const float* b, int64_t b_tap, int64_t ldb, float* c, int64_t ldc,
           int64_t n_valid, bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t t = 0; t < taps; ++t) {
    const float* ap[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) ap[i] = a + rows[i] + tap[t];
    const float* bk = b + t * b_tap;
    for (int64_t k = 0; k < K; ++k) {
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(bk + 16 * j);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(ap[i][k * a_cs]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
      bk += ldb;
    }
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

using Micro = void (*)(int64_t, const int64_t*, int64_t, const float*, const int64_t*, int64_t,
                       const float*, int64_t, int64_t, float*, int64_t, int64_t, bool);

// Rows per tile for each width NV = 1..4: about 24 accumulators, leaving
// registers for the B vectors and the broadcast.
constexpr std::array<int, 4> kRows = {12, 12, 8, 6};

template <int NV, int... R>
constexpr std::array<Micro, sizeof...(R)> row_variants(std::integer_sequence<int, R...>) {
  return {&micro<R + 1, NV>...};
}

// The full tile of each width and every shorter one for the last rows.
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

#endif  // __AVX512F__

}  // namespace

template <typename T>
void tap_gemm(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a, const int64_t* rows,
              const int64_t* tap, int64_t a_cs, const T* b, int64_t b_tap, int64_t ldb, T* c,
              int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    // 64-column panels of B; within one, every row tile of A streams past it.
    for (int64_t j0 = 0; j0 < N; j0 += 64) {
      const int64_t cols = std::min<int64_t>(64, N - j0);
      const int nv = static_cast<int>((cols + 15) / 16);
      const int mr = kRows[nv - 1];
      for (int64_t i0 = 0; i0 < M; i0 += mr) {
        const int m = static_cast<int>(std::min<int64_t>(mr, M - i0));
        micro_for(nv, m)(taps, tap, K, a, rows + i0, a_cs, b + j0, b_tap, ldb,
                         c + i0 * ldc + j0, ldc, cols, accumulate);
      }
    }
    return;
  }
#endif
  tap_gemm_loops(M, N, K, taps, a, rows, tap, a_cs, b, b_tap, ldb, c, ldc, accumulate);
}

template <typename T>
void gemm_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if constexpr (has_fast_tile<T>()) {
    std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(M, 0)));
    for (int64_t i = 0; i < M; ++i) rows[i] = i * a_rs;
    const int64_t no_shift = 0;
    tap_gemm<T>(M, N, K, 1, a, rows.data(), &no_shift, a_cs, b, 0, ldb, c, ldc, accumulate);
  } else {
    blas_tile<T>(M, N, K, a, a_rs, a_cs, b, ldb, c, ldc, accumulate);
  }
}

template void tap_gemm<float>(int64_t, int64_t, int64_t, int64_t, const float*, const int64_t*,
                              const int64_t*, int64_t, const float*, int64_t, int64_t, float*,
                              int64_t, bool);
template void tap_gemm<double>(int64_t, int64_t, int64_t, int64_t, const double*,
                               const int64_t*, const int64_t*, int64_t, const double*, int64_t,
                               int64_t, double*, int64_t, bool);
template void gemm_tile<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                               const float*, int64_t, float*, int64_t, bool);
template void gemm_tile<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                                const double*, int64_t, double*, int64_t, bool);

}  // namespace kiln::cpu
