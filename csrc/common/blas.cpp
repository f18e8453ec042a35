#include "common/blas.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "common/check.h"
#include "common/parallel.h"

namespace kiln {
namespace {

CBLAS_TRANSPOSE op(bool t) { return t ? CblasTrans : CblasNoTrans; }

void check_dims(int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kMax = 0x7fffffff;  // blasint is 32-bit in scipy-openblas32
  KILN_CHECK(M <= kMax && N <= kMax && K <= kMax, "gemm: matrix too large for 32-bit BLAS: M=",
             M, " N=", N, " K=", K);
}

// OpenBLAS runs single-threaded: kiln's pool owns every thread, so a gemm
// issued from inside a parallel_for chunk never starts threads of its own.
// A large gemm is split into blocks of rows or columns of C instead, one
// OpenBLAS call per block, run over the pool.
//
// The blocks come from the problem's size alone, never from the thread count
// or from whether the call is nested in a parallel region: OpenBLAS chooses
// its kernels by the size of each call (small-matrix kernels, how beta is
// applied), so a different split could round C differently. K is never split.
std::once_flag g_serial_blas;

constexpr int64_t kParallelFlops = 1 << 21;  // below this one core is faster (M*N*K)
// Blocks: OpenBLAS packs the whole other operand for every call, and runs
// narrow products slowly, so blocks stay wide (kMinSide rows or columns, at
// least kBlockFlops of M*N*K) and few (kMaxBlocks, enough for a small pool).
constexpr int64_t kMinSide = 64;
constexpr int64_t kBlockFlops = 1 << 20;
constexpr int64_t kMaxBlocks = 8;

template <typename T, typename Call>
void blocked_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T* C, int64_t ldc, Call call) {
  init_blas();
  if (M == 0 || N == 0) return;
  check_dims(M, N, K);
  if (M * N * K < kParallelFlops) {
    call(M, N, A, B, C);
    return;
  }
  // Split the longer side of C into blocks of a multiple of 16 rows or columns.
  const bool rows = M >= N;
  const int64_t length = rows ? M : N, other = (rows ? N : M) * std::max<int64_t>(K, 1);
  const int64_t least = std::max({kMinSide, (kBlockFlops + other - 1) / other,
                                   (length + kMaxBlocks - 1) / kMaxBlocks});
  const int64_t step = (least + 15) / 16 * 16;
  const int64_t blocks = (length + step - 1) / step;
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t i0 = b * step, n = std::min(length, i0 + step) - i0;
      if (rows)
        call(n, N, ta ? A + i0 : A + i0 * lda, B, C + i0 * ldc);
      else
        call(M, n, A, tb ? B + i0 * ldb : B + i0, C + i0);
    }
  });
}

}  // namespace

void init_blas() {
  std::call_once(g_serial_blas, [] { scipy_openblas_set_num_threads(1); });
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  blocked_gemm<float>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
                      [&](int64_t m, int64_t n, const float* a, const float* b, float* c) {
                        scipy_cblas_sgemm(CblasRowMajor, op(ta), op(tb), m, n, K, alpha, a, lda,
                                          b, ldb, beta, c, ldc);
                      });
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  blocked_gemm<double>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
                       [&](int64_t m, int64_t n, const double* a, const double* b, double* c) {
                         scipy_cblas_dgemm(CblasRowMajor, op(ta), op(tb), m, n, K, alpha, a, lda,
                                           b, ldb, beta, c, ldc);
                       });
}

}  // namespace kiln
