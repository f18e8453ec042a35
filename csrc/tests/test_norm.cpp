#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/norm.h"

namespace kiln {
namespace {

std::vector<double> random_vector(int64_t n, uint32_t seed, double mean = 0, double sd = 1) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(mean, sd);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Reference statistics of channel c, in long double by the definition.
void naive_moments(const std::vector<double>& x, const BatchNormSizes& sz, int64_t c,
                   long double& mean, long double& var) {
  long double sum = 0, sq = 0;
  const int64_t m = sz.n * sz.s;
  for (int64_t n = 0; n < sz.n; ++n)
    for (int64_t i = 0; i < sz.s; ++i) sum += x[(n * sz.c + c) * sz.s + i];
  mean = sum / m;
  for (int64_t n = 0; n < sz.n; ++n)
    for (int64_t i = 0; i < sz.s; ++i) {
      const long double d = x[(n * sz.c + c) * sz.s + i] - mean;
      sq += d * d;
    }
  var = sq / m;
}

class BatchNormShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(BatchNormShapes, TrainingForwardAndBackwardMatchReference) {
  const Shape shape = GetParam();
  const BatchNormSizes sz = batch_norm_sizes("batch_norm", shape);
  const int64_t total = sz.n * sz.c * sz.s, m = sz.n * sz.s;
  const auto x = random_vector(total, 1, 3.0, 2.0);
  const auto dy = random_vector(total, 2);
  const auto w = random_vector(sz.c, 3), b = random_vector(sz.c, 4);
  std::vector<double> rm(sz.c, 0.5), rv(sz.c, 2.0), y(total), mean(sz.c), invstd(sz.c);
  const double momentum = 0.1, eps = 1e-5;
  batch_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), rm.data(), rv.data(), true,
                     momentum, eps, mean.data(), invstd.data());
  std::vector<double> dx(total), dw(sz.c), db(sz.c);
  batch_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), invstd.data(), true,
                      dx.data(), dw.data(), db.data());
  for (int64_t c = 0; c < sz.c; ++c) {
    long double mu, var;
    naive_moments(x, sz, c, mu, var);
    const double is = 1.0 / std::sqrt(double(var) + eps);
    EXPECT_NEAR(mean[c], double(mu), 1e-12);
    EXPECT_NEAR(invstd[c], is, 1e-10);
    EXPECT_NEAR(rm[c], 0.9 * 0.5 + 0.1 * double(mu), 1e-12);
    EXPECT_NEAR(rv[c], 0.9 * 2.0 + 0.1 * double(var) * m / (m - 1), 1e-12);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < sz.n; ++n)
      for (int64_t i = 0; i < sz.s; ++i) {
        const int64_t k = (n * sz.c + c) * sz.s + i;
        const double xhat = (x[k] - double(mu)) * is;
        EXPECT_NEAR(y[k], xhat * w[c] + b[c], 1e-10);
        sdy += dy[k];
        sdyx += dy[k] * xhat;
      }
    EXPECT_NEAR(db[c], sdy, 1e-9);
    EXPECT_NEAR(dw[c], sdyx, 1e-9);
    for (int64_t n = 0; n < sz.n; ++n)
      for (int64_t i = 0; i < sz.s; ++i) {
        const int64_t k = (n * sz.c + c) * sz.s + i;
        const double xhat = (x[k] - double(mu)) * is;
        EXPECT_NEAR(dx[k], w[c] * is * (dy[k] - sdy / m - xhat * sdyx / m), 1e-9);
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormShapes,
                         ::testing::Values(Shape{8, 5}, Shape{2, 3}, Shape{4, 3, 7},
                                           Shape{3, 4, 5, 6}, Shape{1, 2, 3, 3},
                                           Shape{2, 3, 2, 2, 3}));

TEST(BatchNorm, EvalUsesRunningStatistics) {
  const Shape shape{3, 2, 4};
  const BatchNormSizes sz = batch_norm_sizes("batch_norm", shape);
  const auto x = random_vector(24, 5);
  const auto dy = random_vector(24, 6);
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end()), y(24), dx(24);
  std::vector<float> rm = {0.5f, -1.0f}, rv = {2.0f, 0.25f}, mean(2), invstd(2), dw(2), db(2);
  batch_norm_forward(xf.data(), y.data(), sz, static_cast<const float*>(nullptr),
                     static_cast<const float*>(nullptr), rm.data(), rv.data(), false, 0.1, 1e-5,
                     mean.data(), invstd.data());
  EXPECT_EQ(rm[0], 0.5f);  // untouched in eval mode
  batch_norm_backward(dyf.data(), xf.data(), sz, static_cast<const float*>(nullptr), mean.data(),
                      invstd.data(), false, dx.data(), dw.data(), db.data());
  for (int64_t k = 0; k < 24; ++k) {
    const int64_t c = (k / 4) % 2;
    const double is = 1.0 / std::sqrt(double(rv[c]) + 1e-5);
    EXPECT_NEAR(y[k], (xf[k] - rm[c]) * is, 1e-5);
    EXPECT_NEAR(dx[k], dyf[k] * is, 1e-5);
  }
}

TEST(BatchNorm, StableForLargeMeanInFloat) {
  // 1e4 + N(0, 1): a naive E[x^2] - E[x]^2 in float loses every digit of the variance.
  const Shape shape{64, 1, 100};
  const BatchNormSizes sz = batch_norm_sizes("batch_norm", shape);
  const auto x = random_vector(6400, 7, 1e4, 1.0);
  std::vector<float> xf(x.begin(), x.end()), y(6400), mean(1), invstd(1);
  batch_norm_forward(xf.data(), y.data(), sz, static_cast<const float*>(nullptr),
                     static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
                     static_cast<float*>(nullptr), true, 0.1, 1e-5, mean.data(), invstd.data());
  std::vector<double> xd(xf.begin(), xf.end());
  long double mu, var;
  naive_moments(xd, sz, 0, mu, var);
  EXPECT_NEAR(1.0 / (invstd[0] * invstd[0]), double(var) + 1e-5, 1e-4 * double(var));
}

TEST(BatchNorm, RejectsBadArguments) {
  const char* op = "batch_norm";
  EXPECT_THROW(batch_norm_sizes(op, {5}), ValueError);
  EXPECT_THROW(check_batch_norm_args(op, {1, 3}, true, true, 1e-5), ValueError);
  EXPECT_THROW(check_batch_norm_args(op, {1, 3, 1, 1}, true, true, 1e-5), ValueError);
  EXPECT_NO_THROW(check_batch_norm_args(op, {1, 3, 2}, true, true, 1e-5));
  EXPECT_NO_THROW(check_batch_norm_args(op, {1, 3}, false, true, 1e-5));
  EXPECT_THROW(check_batch_norm_args(op, {4, 3}, false, false, 1e-5), ValueError);
  EXPECT_THROW(check_batch_norm_args(op, {4, 3}, true, true, 0.0), ValueError);
  EXPECT_THROW(check_channel_param(op, "weight", {4}, {2, 3, 5}), ValueError);
  EXPECT_THROW(check_channel_param(op, "weight", {1, 3}, {2, 3, 5}), ValueError);
  EXPECT_NO_THROW(check_channel_param(op, "weight", {3}, {2, 3, 5}));
  try {
    check_batch_norm_args(op, {1, 3}, true, true, 1e-5);
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1 value per channel"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(1, 3)"), std::string::npos);
  }
}

}  // namespace
}  // namespace kiln
