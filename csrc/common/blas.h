// GEMM through OpenBLAS (the scipy-openblas32 build, whose symbols carry a
// scipy_ prefix). Row-major throughout:
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C[M,N]
// with op(X) = X or X^T; lda/ldb/ldc are row strides of the matrices as stored.
#pragma once

#include <cstdint>

namespace kiln {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc);

// Puts OpenBLAS in single-threaded mode (once); its own worker threads would
// otherwise spin beside kiln's pool. Called when kiln._C loads and by gemm.
void init_blas();

// Threading: OpenBLAS itself runs single-threaded; a large gemm is split into
// blocks of C over kiln's thread pool (serially when called from inside a
// parallel_for chunk). The blocks depend on M, N and K only, so C has the same
// bits at any thread count.

}  // namespace kiln
