#include "cpu/linear.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/blas.h"
#include "common/parallel.h"

namespace kiln {
namespace {

// A gemm at least this large is split over the pool by kiln::gemm itself; smaller
// ones in a batch are better run side by side, one per thread.
constexpr int64_t kBigGemm = 1 << 21;
constexpr int64_t kGrain = 1 << 15;

// C = op(A) op(B) + beta C with beta 0 or 1, also for empty shapes: BLAS would
// reject K = 0 (its leading dimensions must be >= 1), and K = 0 means C = beta C.
template <typename T>
void gemm_any(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == T(0))
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
    return;
  }
  gemm(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}

void check_sizes(const char* op, int64_t M, int64_t K, int64_t N) {
  KILN_CHECK(M >= 0 && K >= 0 && N >= 0, op, ": negative size in (M=", M, ", K=", K, ", N=", N,
             ")");
}

}  // namespace

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t M, int64_t K, int64_t N) {
  check_sizes("linear", M, K, N);
  if (b)
    for (int64_t m = 0; m < M; ++m) std::copy(b, b + N, y + m * N);
  gemm_any(false, true, M, N, K, x, K, w, K, b ? T(1) : T(0), y, N);
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t M,
                     int64_t K, int64_t N) {
  check_sizes("linear_backward", M, K, N);
  if (dx) gemm_any(false, false, M, K, N, dy, N, w, K, T(0), dx, K);
  if (dw) gemm_any(true, false, N, K, M, dy, N, x, K, T(0), dw, K);
  if (!db) return;
  // Column sums, a block of columns per chunk: rows stream through contiguously.
  parallel_for(0, N, std::max<int64_t>(16, kGrain / std::max<int64_t>(M, 1)),
               [&](int64_t n0, int64_t n1) {
                 std::vector<double> acc(static_cast<size_t>(n1 - n0), 0.0);
                 for (int64_t m = 0; m < M; ++m) {
                   const T* row = dy + m * N + n0;
                   for (int64_t j = 0; j < n1 - n0; ++j) acc[j] += row[j];
                 }
                 for (int64_t j = 0; j < n1 - n0; ++j) db[n0 + j] = static_cast<T>(acc[j]);
               });
}

BatchBroadcast broadcast_batches(const Shape& a_batch, const Shape& b_batch, const char* op) {
  const size_t nd = std::max(a_batch.size(), b_batch.size());
  // Right-aligned sizes with 1 for missing dimensions, and each operand's strides
  // in matrices (0 where it is broadcast).
  Shape as(nd, 1), bs(nd, 1);
  std::copy(a_batch.begin(), a_batch.end(), as.begin() + (nd - a_batch.size()));
  std::copy(b_batch.begin(), b_batch.end(), bs.begin() + (nd - b_batch.size()));
  BatchBroadcast bb;
  bb.batch.resize(nd);
  for (size_t d = 0; d < nd; ++d) {
    if (as[d] != bs[d] && as[d] != 1 && bs[d] != 1)
      fail<ValueError>(op, ": batch dimensions ", shape_str(a_batch), " and ", shape_str(b_batch),
                       " cannot be broadcast together");
    bb.batch[d] = as[d] == 1 ? bs[d] : as[d];
  }
  Shape astride(nd, 0), bstride(nd, 0);
  for (size_t k = nd; k-- > 0;) {
    if (as[k] != 1) astride[k] = bb.a_count;
    if (bs[k] != 1) bstride[k] = bb.b_count;
    bb.a_count *= as[k];
    bb.b_count *= bs[k];
  }
  int64_t total = 1;
  for (int64_t s : bb.batch) total *= s;
  bb.a_index.resize(static_cast<size_t>(total));
  bb.b_index.resize(static_cast<size_t>(total));
  Shape idx(nd, 0);
  for (int64_t i = 0; i < total; ++i) {
    int64_t ai = 0, bi = 0;
    for (size_t d = 0; d < nd; ++d) {
      ai += idx[d] * astride[d];
      bi += idx[d] * bstride[d];
    }
    bb.a_index[i] = ai;
    bb.b_index[i] = bi;
    for (size_t d = nd; d-- > 0;) {  // odometer increment over the broadcast shape
      if (++idx[d] < bb.batch[d]) break;
      idx[d] = 0;
    }
  }
  return bb;
}

namespace {

using Terms = std::vector<std::vector<std::pair<int64_t, int64_t>>>;

// For each output matrix o: C_o = sum over (i, j) in terms[o] of op(A_i) op(B_j).
// Each output is owned by one thread, so accumulation needs no locks.
template <typename T>
void grouped_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t a_step,
                  int64_t lda, const T* B, int64_t b_step, int64_t ldb, T* C, const Terms& terms) {
  const int64_t outs = static_cast<int64_t>(terms.size());
  auto run = [&](int64_t o) {
    T* c = C + o * M * N;
    if (terms[o].empty()) std::fill(c, c + M * N, T(0));
    T beta = 0;
    for (const auto& [i, j] : terms[o]) {
      gemm_any(ta, tb, M, N, K, A + i * a_step, lda, B + j * b_step, ldb, beta, c, N);
      beta = 1;
    }
  };
  const int64_t flops = std::max<int64_t>(1, M * N * K);
  if (outs == 1 || flops >= kBigGemm) {
    for (int64_t o = 0; o < outs; ++o) run(o);
    return;
  }
  parallel_for(0, outs, std::max<int64_t>(1, kBigGemm / flops), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) run(o);
  });
}

// A 3-D A against one shared B: the batch stacks into the rows of a single gemm.
bool folds(const BatchBroadcast& bb) {
  if (bb.b_count != 1 || bb.a_count != static_cast<int64_t>(bb.a_index.size())) return false;
  for (size_t i = 0; i < bb.a_index.size(); ++i)
    if (bb.a_index[i] != static_cast<int64_t>(i)) return false;
  return true;
}

void check_matmul(const char* op, const BatchBroadcast& bb, int64_t M, int64_t K, int64_t N) {
  check_sizes(op, M, K, N);
  KILN_CHECK(bb.a_index.size() == bb.b_index.size(), op, ": inconsistent batch broadcast");
  for (size_t i = 0; i < bb.a_index.size(); ++i)
    KILN_CHECK(bb.a_index[i] >= 0 && bb.a_index[i] < bb.a_count && bb.b_index[i] >= 0 &&
                   bb.b_index[i] < bb.b_count,
               op, ": batch index out of range");
}

}  // namespace

template <typename T>
void matmul_forward(const T* a, const T* b, T* c, const BatchBroadcast& bb, int64_t M, int64_t K,
                    int64_t N) {
  check_matmul("matmul", bb, M, K, N);
  const int64_t batch = static_cast<int64_t>(bb.a_index.size());
  if (folds(bb)) return gemm_any(false, false, batch * M, N, K, a, K, b, N, T(0), c, N);
  Terms terms(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) terms[i] = {{bb.a_index[i], bb.b_index[i]}};
  grouped_gemm(false, false, M, N, K, a, M * K, K, b, K * N, N, c, terms);
}

template <typename T>
void matmul_backward(const T* dc, const T* a, const T* b, T* da, T* db, const BatchBroadcast& bb,
                     int64_t M, int64_t K, int64_t N) {
  check_matmul("matmul_backward", bb, M, K, N);
  const int64_t batch = static_cast<int64_t>(bb.a_index.size());
  if (folds(bb)) {
    if (da) gemm_any(false, true, batch * M, K, N, dc, N, b, N, T(0), da, K);
    if (db) gemm_any(true, false, K, N, batch * M, a, K, dc, N, T(0), db, N);
    return;
  }
  if (da) {  // dA_j = sum dC_i B_{b(i)}^T
    Terms terms(static_cast<size_t>(bb.a_count));
    for (int64_t i = 0; i < batch; ++i) terms[bb.a_index[i]].push_back({i, bb.b_index[i]});
    grouped_gemm(false, true, M, K, N, dc, M * N, N, b, K * N, N, da, terms);
  }
  if (db) {  // dB_j = sum A_{a(i)}^T dC_i
    Terms terms(static_cast<size_t>(bb.b_count));
    for (int64_t i = 0; i < batch; ++i) terms[bb.b_index[i]].push_back({bb.a_index[i], i});
    grouped_gemm(true, false, K, N, M, a, M * K, K, dc, M * N, N, db, terms);
  }
}

#define KILN_INSTANTIATE(T)                                                                     \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,  \
                                   int64_t);                                                    \
  template void matmul_forward<T>(const T*, const T*, T*, const BatchBroadcast&, int64_t,       \
                                  int64_t, int64_t);                                            \
  template void matmul_backward<T>(const T*, const T*, const T*, T*, T*, const BatchBroadcast&, \
                                   int64_t, int64_t, int64_t);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln
