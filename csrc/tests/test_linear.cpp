#include <gtest/gtest.h>

#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/linear.h"
#include "tests/finite_diff.h"

namespace kiln {
namespace {

using testing::test_values;

// C (M, N) = A (M, K) B (K, N), plain loops.
std::vector<double> naive_mm(const double* A, const double* B, int64_t M, int64_t K, int64_t N) {
  std::vector<double> C(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) C[m * N + n] += A[m * K + k] * B[k * N + n];
  return C;
}

std::vector<double> transpose(const std::vector<double>& A, int64_t rows, int64_t cols) {
  std::vector<double> T(A.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) T[c * rows + r] = A[r * cols + c];
  return T;
}

void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tol = 1e-10) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << "at " << i;
}

TEST(Linear, ForwardAndBackwardMatchNaive) {
  set_num_threads(2);
  struct Case {
    int64_t M, K, N;
  };
  for (Case c : {Case{5, 7, 3}, Case{1, 1, 1}, Case{130, 200, 150}, Case{4, 0, 3}, Case{0, 4, 3}}) {
    const auto x = test_values(c.M * c.K, 1), w = test_values(c.N * c.K, 2),
               b = test_values(c.N, 3), dy = test_values(c.M * c.N, 4);
    std::vector<double> y(c.M * c.N);
    linear_forward<double>(x.data(), w.data(), b.data(), y.data(), c.M, c.K, c.N);
    auto want = naive_mm(x.data(), transpose(w, c.N, c.K).data(), c.M, c.K, c.N);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) want[m * c.N + n] += b[n];
    expect_near(y, want);

    std::vector<double> dx(c.M * c.K, 7.0), dw(c.N * c.K, 7.0), db(c.N, 7.0);
    linear_backward<double>(dy.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), c.M,
                            c.K, c.N);
    expect_near(dx, naive_mm(dy.data(), w.data(), c.M, c.N, c.K));
    expect_near(dw, naive_mm(transpose(dy, c.M, c.N).data(), x.data(), c.N, c.M, c.K));
    std::vector<double> want_db(c.N, 0.0);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) want_db[n] += dy[m * c.N + n];
    expect_near(db, want_db);
  }
}

TEST(Linear, RejectsNegativeSizes) {
  float v = 0;
  EXPECT_THROW(linear_forward<float>(&v, &v, nullptr, &v, -1, 1, 1), ValueError);
  EXPECT_THROW(linear_backward<float>(&v, &v, &v, &v, nullptr, nullptr, 1, -1, 1), ValueError);
}

TEST(BroadcastBatches, FollowsNumPy) {
  const BatchBroadcast bb = broadcast_batches({2, 1}, {3}, "matmul");
  EXPECT_EQ(bb.batch, (Shape{2, 3}));
  EXPECT_EQ(bb.a_count, 2);
  EXPECT_EQ(bb.b_count, 3);
  EXPECT_EQ(bb.a_index, (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(bb.b_index, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  const BatchBroadcast none = broadcast_batches({}, {}, "matmul");
  EXPECT_EQ(none.a_index, (std::vector<int64_t>{0}));
  EXPECT_EQ(broadcast_batches({0}, {1}, "matmul").a_index.size(), 0u);
  EXPECT_THROW(broadcast_batches({2}, {3}, "matmul"), ValueError);
}

TEST(Matmul, BroadcastForwardAndBackwardMatchNaive) {
  set_num_threads(2);
  const int64_t M = 3, K = 4, N = 5;
  struct Case {
    Shape a_batch, b_batch;
  };
  for (const Case& c : {Case{{2, 1}, {3}}, Case{{4}, {}}, Case{{}, {4}}, Case{{3}, {3}},
                        Case{{1}, {2}}}) {
    const BatchBroadcast bb = broadcast_batches(c.a_batch, c.b_batch, "matmul");
    const int64_t batch = static_cast<int64_t>(bb.a_index.size());
    const auto a = test_values(bb.a_count * M * K, 1), b = test_values(bb.b_count * K * N, 2),
               dc = test_values(batch * M * N, 3);
    std::vector<double> out(batch * M * N), da(a.size(), 9.0), db(b.size(), 9.0);
    matmul_forward<double>(a.data(), b.data(), out.data(), bb, M, K, N);
    matmul_backward<double>(dc.data(), a.data(), b.data(), da.data(), db.data(), bb, M, K, N);
    std::vector<double> want_da(a.size(), 0.0), want_db(b.size(), 0.0);
    for (int64_t i = 0; i < batch; ++i) {
      const double* ai = a.data() + bb.a_index[i] * M * K;
      const double* bi = b.data() + bb.b_index[i] * K * N;
      const double* gi = dc.data() + i * M * N;
      const auto ci = naive_mm(ai, bi, M, K, N);
      for (int64_t j = 0; j < M * N; ++j) EXPECT_NEAR(out[i * M * N + j], ci[j], 1e-10);
      const auto gai = naive_mm(gi, transpose(std::vector<double>(bi, bi + K * N), K, N).data(),
                                M, N, K);
      const auto gbi = naive_mm(transpose(std::vector<double>(ai, ai + M * K), M, K).data(), gi,
                                K, M, N);
      for (int64_t j = 0; j < M * K; ++j) want_da[bb.a_index[i] * M * K + j] += gai[j];
      for (int64_t j = 0; j < K * N; ++j) want_db[bb.b_index[i] * K * N + j] += gbi[j];
    }
    expect_near(da, want_da);
    expect_near(db, want_db);
  }
}

TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  const BatchBroadcast bb = broadcast_batches({2}, {2}, "matmul");
  std::vector<float> c(2 * 3 * 4, 5.f);
  matmul_forward<float>(nullptr, nullptr, c.data(), bb, 3, 0, 4);
  for (float v : c) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace kiln
