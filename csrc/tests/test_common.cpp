#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
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

// Jobs back to back, each of a different size: a worker still leaving one job
// while the next opens must neither run a chunk of the new job twice nor count
// one (the caller then waited forever for a count it had overshot).
TEST(ParallelFor, BackToBackJobsRunEveryChunkOnce) {
  set_num_threads(4);  // more threads than cores makes late workers common
  std::vector<std::atomic<int>> hits(64);
  for (int job = 0; job < 50000; ++job) {
    const int64_t n = 2 + job % 13;
    parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].exchange(0), 1) << "job " << job;
  }
  set_num_threads(2);
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

TEST(FixedChunks, CoverTheRangeInNearEqualPiecesWhateverThePool) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    const FixedChunks c = fixed_chunks(1000, 64, 8);  // ceil(1000 / 64) = 16, capped at 8
    EXPECT_EQ(c.count, 8);
    EXPECT_EQ(c.begin(0), 0);
    EXPECT_EQ(c.end(c.count - 1), 1000);
    for (int64_t i = 0; i < c.count; ++i) EXPECT_EQ(c.end(i) - c.begin(i), 125);
  }
  const FixedChunks uneven = fixed_chunks(10, 3, 100);  // 4 chunks: 3, 3, 2, 2
  EXPECT_EQ(uneven.count, 4);
  EXPECT_EQ(uneven.end(0), 3);
  EXPECT_EQ(uneven.end(1), 6);
  EXPECT_EQ(uneven.end(2), 8);
  EXPECT_EQ(fixed_chunks(0, 16, 8).count, 1);
  EXPECT_EQ(fixed_chunks(5, 0, 0).count, 1);
  EXPECT_THROW(fixed_chunks(-1, 1, 1), ValueError);
}

TEST(ParallelChunks, CallsEveryChunkOnceWithItsBounds) {
  set_num_threads(3);
  const FixedChunks c = fixed_chunks(10007, 100, 37);
  std::vector<std::atomic<int>> hits(10007);
  std::vector<std::atomic<int>> calls(c.count);
  parallel_chunks(c, [&](int64_t k, int64_t b, int64_t e) {
    EXPECT_EQ(b, c.begin(k));
    EXPECT_EQ(e, c.end(k));
    calls[k]++;
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  for (auto& n : calls) EXPECT_EQ(n.load(), 1);
}

// A float sum whose rounding shows any change of grouping: terms of very
// different magnitudes.
std::vector<float> reduce_at(int threads, int64_t n) {
  set_num_threads(threads);
  std::vector<float> out(3);
  parallel_reduce<float>(n, 50, 64, 3, out.data(), [](int64_t b, int64_t e, float* part) {
    for (int64_t i = b; i < e; ++i) {
      const float v = std::sin(0.37f * float(i)) * std::pow(10.0f, float(i % 7) - 3);
      part[0] += v;
      part[1] += v * v;
      part[2] += 1;
    }
  });
  return out;
}

TEST(ParallelReduce, SameBitsAtAnyThreadCount) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{49}, int64_t{1000}, int64_t{100003}}) {
    const std::vector<float> one = reduce_at(1, n);
    EXPECT_EQ(one[2], float(n));
    for (int threads : {2, 3, 4}) {
      const std::vector<float> other = reduce_at(threads, n);
      EXPECT_EQ(std::memcmp(one.data(), other.data(), sizeof(float) * 3), 0)
          << "n=" << n << " threads=" << threads;
    }
  }
  set_num_threads(2);
}

TEST(ParallelReduce, AddsThePartsInChunkOrder) {
  set_num_threads(2);
  // Chunks of 1 term each: out = ((p0 + p1) + p2) + p3 exactly in that order.
  const float terms[] = {1e8f, 1.0f, -1e8f, 1.0f};
  float out = -1;
  parallel_reduce<float>(4, 1, 4, 1, &out,
                         [&](int64_t b, int64_t, float* part) { part[0] = terms[b]; });
  EXPECT_EQ(out, ((1e8f + 1.0f) - 1e8f) + 1.0f);
}

TEST(OrderedSum, AddsInPartOrderWhateverOrderPartsFinish) {
  // ((1e8 + 1) - 1e8) + 1 == 1 in float; any other grouping of these four
  // gives 0 or 2.
  const float terms[] = {1e8f, 1.0f, -1e8f, 1.0f};
  for (const auto& finish_order : {std::array<int, 4>{3, 2, 1, 0}, {1, 3, 0, 2}, {0, 1, 2, 3}}) {
    float out = -7;
    int inits = 0;
    OrderedSum<float> sum(1, &out, {2, 2, 2, 2}, [&](float* p) {
      p[0] = 0;
      ++inits;
    });
    for (int c : finish_order) {  // two tasks per part: half the term each
      sum.part(c)[0] += terms[c] / 2;
      sum.finish(c);
    }
    for (int c : finish_order) {
      sum.part(c)[0] += terms[c] / 2;
      sum.finish(c);
    }
    EXPECT_EQ(inits, 4);
    EXPECT_EQ(out, 1.0f);
  }
}

TEST(Gemm, SameBitsAtAnyThreadCount) {
  // Large enough to be split into blocks; rows and columns split in turn.
  for (auto [M, N, K] : {std::array<int64_t, 3>{300, 70, 500}, {40, 900, 200}}) {
    std::vector<float> A(M * K), B(K * N);
    for (int64_t i = 0; i < M * K; ++i) A[i] = std::sin(0.1f * float(i));
    for (int64_t i = 0; i < K * N; ++i) B[i] = std::cos(0.3f * float(i));
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      std::vector<float> C(M * N, 0.5f);
      gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 1.0f, C.data(), N);
      results.push_back(C);
    }
    EXPECT_EQ(results[0], results[1]);
    EXPECT_EQ(results[0], results[2]);
    // From inside a parallel region the same blocks run serially: same bits.
    std::vector<float> nested(M * N, 0.5f);
    parallel_for(0, 2, 1, [&](int64_t b, int64_t) {
      if (b == 0)
        gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 1.0f, nested.data(), N);
    });
    EXPECT_EQ(results[0], nested);
  }
  set_num_threads(2);
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
