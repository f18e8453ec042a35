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
// A large gemm from the caller's thread is split into row or column blocks
// across the pool instead.
std::once_flag g_serial_blas;

constexpr int64_t kParallelFlops = 1 << 21;  // below this one core is faster

template <typename T, typename Call>
void blocked_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T* C, int64_t ldc, Call call) {
  init_blas();
  if (M == 0 || N == 0) return;
  check_dims(M, N, K);
  const int threads = get_num_threads();
  if (threads == 1 || in_parallel_region() || M * N * K < kParallelFlops) {
    call(M, N, A, B, C);
    return;
  }
  if (M >= N) {  // split rows of op(A) and C
    const int64_t grain = std::max<int64_t>(16, (M / threads + 15) / 16 * 16);
    parallel_for(0, M, grain, [&](int64_t m0, int64_t m1) {
      call(m1 - m0, N, ta ? A + m0 : A + m0 * lda, B, C + m0 * ldc);
    });
  } else {  // split columns of op(B) and C
    const int64_t grain = std::max<int64_t>(16, (N / threads + 15) / 16 * 16);
    parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
      call(M, n1 - n0, A, tb ? B + n0 * ldb : B + n0, C + n0);
    });
  }
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
