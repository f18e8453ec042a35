// Linear layers and matrix products on top of kiln::gemm (row-major, no copies:
// transposes are gemm flags, never materialized).
//
// linear   x (M, K), W (N, K), b (N):
//   forward   y = x W^T + b                (M, N)   gemm(no, trans)
//   backward  dx = dy W                    (M, K)   gemm(no, no)
//             dW = dy^T x                  (N, K)   gemm(trans, no)
//             db = sum_m dy[m, :]          (N)
//
// matmul   A (batch_a, M, K), B (batch_b, K, N), C (batch, M, N), where output matrix i
// reads A's matrix a_index[i] and B's matrix b_index[i] (NumPy batch broadcasting):
//   forward   C_i  = A_{a(i)} B_{b(i)}
//   backward  dA_j = sum_{i: a(i) = j} dC_i B_{b(i)}^T
//             dB_j = sum_{i: b(i) = j} A_{a(i)}^T dC_i
// When every output reads the same B and the A matrices in order (a 3-D A times a
// 2-D B, the batched-linear case), the batch folds into one gemm with M' = batch * M.
#pragma once

#include <cstdint>
#include <vector>

#include "common/check.h"

namespace kiln {

// x: (M, K), w: (N, K), b: (N) or null, y: (M, N).
template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t M, int64_t K, int64_t N);
// dx (M, K), dw (N, K), db (N): each may be null when not wanted.
template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t M,
                     int64_t K, int64_t N);

// NumPy's broadcasting of two batch shapes (the dimensions before the last two).
struct BatchBroadcast {
  Shape batch;                   // the broadcast batch shape
  int64_t a_count = 1;           // matrices in A (product of its batch shape)
  int64_t b_count = 1;           // matrices in B
  std::vector<int64_t> a_index;  // per output matrix: which matrix of A it reads
  std::vector<int64_t> b_index;  // per output matrix: which matrix of B it reads
};
// Throws ValueError naming op when the batch shapes do not broadcast.
BatchBroadcast broadcast_batches(const Shape& a_batch, const Shape& b_batch, const char* op);

// a: (a_count, M, K), b: (b_count, K, N), c: (batch, M, N).
template <typename T>
void matmul_forward(const T* a, const T* b, T* c, const BatchBroadcast& bb, int64_t M, int64_t K,
                    int64_t N);
// da: like a, db: like b; either may be null.
template <typename T>
void matmul_backward(const T* dc, const T* a, const T* b, T* da, T* db, const BatchBroadcast& bb,
                     int64_t M, int64_t K, int64_t N);

}  // namespace kiln
