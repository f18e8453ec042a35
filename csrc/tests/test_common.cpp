#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <vector>

#include "common/blas.h"
#include "common/check.h"
#include "common/parallel.h"
#include "common/rng.h"

namespace kiln {
namespace {

TEST(ParallelFor, CoversEveryIndexOnce) {
  set_num_threads(2);
  std::vector<std::atomic<int>> hits(10007);
  parallel_for(0, 10007, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, SmallWorkRunsOnCaller) {
  set_num_threads(2);
  int calls = 0;
  parallel_for(0, 5, 100, [&](int64_t b, int64_t e) {
    ++calls;
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 5);
  });
  EXPECT_EQ(calls, 1);
}

TEST(ParallelFor, RethrowsWorkerException) {
  set_num_threads(2);
  EXPECT_THROW(parallel_for(0, 1000, 1,
                            [](int64_t b, int64_t) {
                              if (b > 0) throw std::runtime_error("boom");
                            }),
               std::runtime_error);
  // The pool is still usable afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(0, 100, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 100);
}

TEST(SetNumThreads, RejectsZero) { EXPECT_THROW(set_num_threads(0), ValueError); }

TEST(Philox, KnownAnswer) {
  // Random123's published known-answer vector for philox4x32-10 with zero key
  // and counter: 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  auto r = philox4x32(0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Philox, UniformInRangeAndDistinct) {
  Philox g(42, 0);
  std::set<float> seen;
  for (int i = 0; i < 1000; ++i) {
    float u = g.uniform();
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
    seen.insert(u);
  }
  EXPECT_GT(seen.size(), 990u);
}

TEST(Gemm, MatchesNaiveWithTransposes) {
  const int M = 5, N = 7, K = 3;
  std::vector<float> A(M * K), B(K * N), C(M * N, 1.0f);
  for (int i = 0; i < M * K; ++i) A[i] = 0.5f * i - 2;
  for (int i = 0; i < K * N; ++i) B[i] = 0.25f * i - 1;
  // A stored transposed (K x M), so op(A) = A^T gives the M x K matrix.
  std::vector<float> At(K * M);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) At[k * M + m] = A[m * K + k];
  gemm(true, false, M, N, K, 2.0f, At.data(), M, B.data(), N, 1.0f, C.data(), N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float ref = 1.0f;
      for (int k = 0; k < K; ++k) ref += 2.0f * A[m * K + k] * B[k * N + n];
      EXPECT_NEAR(C[m * N + n], ref, 1e-4f);
    }
}

}  // namespace
}  // namespace kiln
