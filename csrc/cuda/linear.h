// Linear layers and matrix products on the GPU: the twins of cpu/linear.h (same
// formulas, same arguments), through cuBLAS. cuBLAS is column-major; a row-major
// matrix is the column-major matrix of its transpose, so row-major C = op(A) op(B)
// is column-major C^T = op(B)^T op(A)^T: one cuBLAS call with the operands swapped
// and the same transpose flags, nothing copied.
//
// linear   x (M, K), W (N, K), b (N):
//   forward   y = x W^T + b                (M, N)
//   backward  dx = dy W, dW = dy^T x, db = sum_m dy[m, :]   (db deterministic, in double)
// matmul   A (a_count, M, K), B (b_count, K, N), C (batch, M, N), NumPy broadcasting of
// the batches as cpu/linear.h's BatchBroadcast:
//   forward   C_i  = A_{a(i)} B_{b(i)}
//   backward  dA_j = sum_{i: a(i) = j} dC_i B_{b(i)}^T,  dB_j = sum_{i: b(i) = j} A_{a(i)}^T dC_i
// float32 runs in full float32 (no TF32), so results agree with the CPU to rounding.
//
// Pointers are device memory; everything runs on the current device's stream, and
// each device has one cuBLAS handle bound to that stream.
#pragma once

#include <cstdint>

#include "cpu/linear.h"

namespace kiln::cuda {

// Row-major C = op(A) op(B) + beta C on the current device (op(A): M x K, op(B):
// K x N; lda, ldb, ldc the stored row lengths), also for empty sizes (K = 0 gives
// C = beta C). beta is 0 or 1.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// `count` such products, matrix i at A + i*stride_a, B + i*stride_b, C + i*stride_c
// (a stride 0 reuses one matrix), in one cuBLAS launch.
template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                  int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                  T beta, T* C, int64_t ldc, int64_t stride_c, int64_t count);

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t M, int64_t K, int64_t N);
template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t M,
                     int64_t K, int64_t N);

template <typename T>
void matmul_forward(const T* a, const T* b, T* c, const BatchBroadcast& bb, int64_t M, int64_t K,
                    int64_t N);
template <typename T>
void matmul_backward(const T* dc, const T* a, const T* b, T* da, T* db, const BatchBroadcast& bb,
                     int64_t M, int64_t K, int64_t N);

}  // namespace kiln::cuda
