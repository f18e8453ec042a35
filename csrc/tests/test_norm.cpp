#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/norm.h"
#include "tests/finite_diff.h"

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
                                           Shape{2, 3, 2, 2, 3}, Shape{3, 20, 2, 2},
                                           Shape{2, 3, 9, 9}));

// The fused batch norm + residual + ReLU against the unfused composition, in
// float: batch_norm_forward, + residual, ReLU; ReLU's gradient, batch_norm_backward.
// Both round alike, so the results are equal, not merely close.
// Planes of 35 values run by channel spans, of 81 row by row.
void check_fused_equals_unfused(bool training, bool with_residual,
                                const Shape& shape = Shape{3, 4, 5, 7}) {
  const BatchNormSizes sz = batch_norm_sizes("batch_norm", shape);
  const int64_t total = sz.n * sz.c * sz.s;
  auto as_float = [](const std::vector<double>& v) {
    return std::vector<float>(v.begin(), v.end());
  };
  const auto x = as_float(random_vector(total, 11, 0.5, 2.0));
  const auto r = as_float(random_vector(total, 12));
  const auto dy = as_float(random_vector(total, 13));
  const auto w = as_float(random_vector(sz.c, 14)), b = as_float(random_vector(sz.c, 15));
  const float* res = with_residual ? r.data() : nullptr;
  std::vector<float> rm1(sz.c, 0.5f), rv1(sz.c, 2.0f), rm2 = rm1, rv2 = rv1;
  std::vector<float> y1(total), y2(total), m1(sz.c), m2(sz.c), is1(sz.c), is2(sz.c);
  // unfused
  batch_norm_forward(x.data(), y1.data(), sz, w.data(), b.data(), rm1.data(), rv1.data(),
                     training, 0.1, 1e-5, m1.data(), is1.data());
  for (int64_t k = 0; k < total; ++k) {
    const float z = res ? y1[k] + res[k] : y1[k];
    y1[k] = z < 0.f ? 0.f : z;
  }
  std::vector<float> g(total), dx1(total), dw1(sz.c), db1(sz.c);
  for (int64_t k = 0; k < total; ++k) g[k] = y1[k] <= 0.f ? 0.f : dy[k];
  batch_norm_backward(g.data(), x.data(), sz, w.data(), m1.data(), is1.data(), training,
                      dx1.data(), dw1.data(), db1.data());
  // fused
  batch_norm_relu_forward(x.data(), res, y2.data(), sz, w.data(), b.data(), rm2.data(),
                          rv2.data(), training, 0.1, 1e-5, m2.data(), is2.data());
  std::vector<float> dx2(total), dw2(sz.c), db2(sz.c), dr(total);
  batch_norm_relu_backward(dy.data(), y2.data(), x.data(), sz, w.data(), m2.data(), is2.data(),
                           training, dx2.data(), dw2.data(), db2.data(),
                           with_residual ? dr.data() : nullptr);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(rm1, rm2);
  EXPECT_EQ(rv1, rv2);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(is1, is2);
  EXPECT_EQ(dx1, dx2);
  EXPECT_EQ(dw1, dw2);
  EXPECT_EQ(db1, db2);
  if (with_residual) {
    EXPECT_EQ(g, dr);
  }
  int64_t zeros = 0;
  for (float v : y2) zeros += v == 0.f;
  EXPECT_GT(zeros, total / 20);  // the ReLU's mask is exercised
}

TEST(BatchNormReLU, TrainingEqualsUnfused) { check_fused_equals_unfused(true, false); }
TEST(BatchNormReLU, TrainingWithResidualEqualsUnfused) { check_fused_equals_unfused(true, true); }
TEST(BatchNormReLU, EvalEqualsUnfused) { check_fused_equals_unfused(false, false); }
TEST(BatchNormReLU, EvalWithResidualEqualsUnfused) { check_fused_equals_unfused(false, true); }
TEST(BatchNormReLU, LargePlanesEqualUnfused) {
  check_fused_equals_unfused(true, true, Shape{2, 3, 9, 9});
  check_fused_equals_unfused(false, false, Shape{2, 3, 9, 9});
}

TEST(BatchNormReLU, FiniteDifferences) {
  // d/dx, d/dresidual of sum(relu(bn(x) + r) * dy) in double, away from the kink.
  const Shape shape{2, 3, 4};
  const BatchNormSizes sz = batch_norm_sizes("batch_norm", shape);
  const int64_t total = 24;
  const auto x0 = random_vector(total, 21), r0 = random_vector(total, 22);
  const auto dy = random_vector(total, 23);
  const auto w = random_vector(sz.c, 24), b = random_vector(sz.c, 25);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& r) {
    std::vector<double> y(total), m(sz.c), is(sz.c);
    batch_norm_relu_forward(x.data(), r.data(), y.data(), sz, w.data(), b.data(),
                            static_cast<double*>(nullptr), static_cast<double*>(nullptr), true,
                            0.1, 1e-5, m.data(), is.data());
    double sum = 0;
    for (int64_t k = 0; k < total; ++k) sum += y[k] * dy[k];
    return sum;
  };
  std::vector<double> y(total), m(sz.c), is(sz.c), dx(total), dw(sz.c), db(sz.c), dr(total);
  batch_norm_relu_forward(x0.data(), r0.data(), y.data(), sz, w.data(), b.data(),
                          static_cast<double*>(nullptr), static_cast<double*>(nullptr), true,
                          0.1, 1e-5, m.data(), is.data());
  batch_norm_relu_backward(dy.data(), y.data(), x0.data(), sz, w.data(), m.data(), is.data(),
                           true, dx.data(), dw.data(), db.data(), dr.data());
  const double h = 1e-6;
  for (int64_t k = 0; k < total; ++k) {
    auto xp = x0, xm = x0, rp = r0, rm = r0;
    xp[k] += h, xm[k] -= h, rp[k] += h, rm[k] -= h;
    EXPECT_NEAR(dx[k], (loss(xp, r0) - loss(xm, r0)) / (2 * h), 1e-5) << k;
    EXPECT_NEAR(dr[k], (loss(x0, rp) - loss(x0, rm)) / (2 * h), 1e-5) << k;
  }
}

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

struct GroupNormCase {
  Shape shape;
  int64_t groups;
};

class GroupNormShapes : public ::testing::TestWithParam<GroupNormCase> {};

// Forward and backward against the formulas evaluated in long double, group by group.
TEST_P(GroupNormShapes, ForwardAndBackwardMatchReference) {
  const GroupNormSizes sz = group_norm_sizes("group_norm", GetParam().shape, GetParam().groups);
  const int64_t total = sz.n * sz.c * sz.s, d = sz.group_size();
  const auto x = random_vector(total, 11, -2.0, 3.0);
  const auto dy = random_vector(total, 12);
  const auto w = random_vector(sz.c, 13), b = random_vector(sz.c, 14);
  const double eps = 1e-5;
  std::vector<double> y(total), mean(sz.n * sz.groups), rstd(sz.n * sz.groups);
  group_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), eps, mean.data(), rstd.data());
  std::vector<double> dx(total), dw(sz.c), db(sz.c);
  group_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), rstd.data(), dx.data(),
                      dw.data(), db.data());
  std::vector<long double> want_dw(sz.c, 0), want_db(sz.c, 0);
  for (int64_t r = 0; r < sz.n * sz.groups; ++r) {  // group r = n*G + g: x[r*D, (r+1)*D)
    const int64_t c0 = (r % sz.groups) * sz.channels_per_group();
    long double sum = 0, sq = 0, sum_dyw = 0, sum_dyw_xhat = 0;
    for (int64_t k = r * d; k < (r + 1) * d; ++k) sum += x[k];
    const long double mu = sum / d;
    for (int64_t k = r * d; k < (r + 1) * d; ++k) sq += (x[k] - mu) * (x[k] - mu);
    const long double is = 1 / std::sqrt(sq / d + eps);
    EXPECT_NEAR(mean[r], double(mu), 1e-12);
    EXPECT_NEAR(rstd[r], double(is), 1e-10);
    for (int64_t k = r * d; k < (r + 1) * d; ++k) {
      const int64_t c = c0 + (k - r * d) / sz.s;
      const long double xhat = (x[k] - mu) * is;
      EXPECT_NEAR(y[k], double(xhat * w[c] + b[c]), 1e-10);
      sum_dyw += dy[k] * w[c];
      sum_dyw_xhat += dy[k] * w[c] * xhat;
      want_db[c] += dy[k];
      want_dw[c] += dy[k] * xhat;
    }
    for (int64_t k = r * d; k < (r + 1) * d; ++k) {
      const int64_t c = c0 + (k - r * d) / sz.s;
      const long double xhat = (x[k] - mu) * is;
      EXPECT_NEAR(dx[k], double(is * (dy[k] * w[c] - sum_dyw / d - xhat * sum_dyw_xhat / d)),
                  1e-9);
    }
  }
  for (int64_t c = 0; c < sz.c; ++c) {
    EXPECT_NEAR(dw[c], double(want_dw[c]), 1e-9);
    EXPECT_NEAR(db[c], double(want_db[c]), 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GroupNormShapes,
                         ::testing::Values(GroupNormCase{{4, 6}, 3}, GroupNormCase{{3, 4, 5}, 2},
                                           GroupNormCase{{2, 6, 3, 4}, 3},
                                           GroupNormCase{{1, 4, 2, 2}, 4},
                                           GroupNormCase{{2, 4, 3}, 1},
                                           GroupNormCase{{2, 4, 2, 3, 2}, 2}));

// sum(y * r) for a fixed r: its gradient is backward(dy = r).
double group_norm_loss(const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& b, const std::vector<double>& r,
                       const GroupNormSizes& sz) {
  std::vector<double> y(x.size()), mean(sz.n * sz.groups), rstd(sz.n * sz.groups);
  group_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), 1e-3, mean.data(), rstd.data());
  double loss = 0;
  for (size_t k = 0; k < y.size(); ++k) loss += y[k] * r[k];
  return loss;
}

TEST(GroupNorm, GradientsMatchFiniteDifferences) {
  const GroupNormSizes sz = group_norm_sizes("group_norm", {2, 6, 3, 2}, 3);
  const int64_t total = sz.n * sz.c * sz.s;
  auto x = random_vector(total, 21, 0.5, 2.0), w = random_vector(sz.c, 22),
       b = random_vector(sz.c, 23);
  const auto r = random_vector(total, 24);
  std::vector<double> y(total), mean(sz.n * sz.groups), rstd(sz.n * sz.groups), dx(total),
      dw(sz.c), db(sz.c);
  group_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), 1e-3, mean.data(), rstd.data());
  group_norm_backward(r.data(), x.data(), sz, w.data(), mean.data(), rstd.data(), dx.data(),
                      dw.data(), db.data());
  const double h = 1e-6;
  auto central = [&](std::vector<double>& v, int64_t k) {
    const double keep = v[k];
    v[k] = keep + h;
    const double up = group_norm_loss(x, w, b, r, sz);
    v[k] = keep - h;
    const double down = group_norm_loss(x, w, b, r, sz);
    v[k] = keep;
    return (up - down) / (2 * h);
  };
  for (int64_t k = 0; k < total; ++k) EXPECT_NEAR(dx[k], central(x, k), 1e-6) << "dx " << k;
  for (int64_t c = 0; c < sz.c; ++c) {
    EXPECT_NEAR(dw[c], central(w, c), 1e-6) << "dweight " << c;
    EXPECT_NEAR(db[c], central(b, c), 1e-6) << "dbias " << c;
  }
}

TEST(GroupNorm, KnownAnswerInFloat) {
  // One group of 4 values 1, 2, 3, 4: mean 2.5, variance 1.25.
  const GroupNormSizes sz = group_norm_sizes("group_norm", {1, 2, 2}, 1);
  const std::vector<float> x = {1, 2, 3, 4}, w = {2, -1}, b = {0.5f, 1};
  std::vector<float> y(4), mean(1), rstd(1);
  group_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), 1e-5, mean.data(), rstd.data());
  const double is = 1 / std::sqrt(1.25 + 1e-5);
  EXPECT_EQ(mean[0], 2.5f);
  EXPECT_FLOAT_EQ(rstd[0], float(is));
  const double want[4] = {-1.5 * is * 2 + 0.5, -0.5 * is * 2 + 0.5, 0.5 * is * -1 + 1,
                          1.5 * is * -1 + 1};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(y[k], want[k], 1e-6);
}

TEST(GroupNorm, SkipsTheGradientsNotAskedFor) {
  const GroupNormSizes sz = group_norm_sizes("group_norm", {3, 4, 5}, 2);
  const auto x = random_vector(60, 31), dy = random_vector(60, 32), w = random_vector(4, 33);
  std::vector<double> y(60), mean(6), rstd(6), dx(60), dw(4), db(4);
  group_norm_forward(x.data(), y.data(), sz, w.data(), static_cast<const double*>(nullptr), 1e-5,
                     mean.data(), rstd.data());
  group_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), rstd.data(), dx.data(),
                      dw.data(), db.data());
  std::vector<double> dx_only(60), dw_only(4, -7.0);
  group_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), rstd.data(), dx_only.data(),
                      static_cast<double*>(nullptr), static_cast<double*>(nullptr));
  group_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), rstd.data(),
                      static_cast<double*>(nullptr), dw_only.data(), static_cast<double*>(nullptr));
  EXPECT_EQ(dx_only, dx);
  EXPECT_EQ(dw_only, dw);
}

TEST(GroupNorm, EmptySpatialAndBatchGiveZeroGradients) {
  for (const Shape& shape : {Shape{0, 4, 3}, Shape{2, 4, 0}}) {
    const GroupNormSizes sz = group_norm_sizes("group_norm", shape, 2);
    std::vector<double> mean(sz.n * 2), rstd(sz.n * 2), dw(4, 1.0), db(4, 1.0);
    const std::vector<double> none;
    group_norm_forward(none.data(), static_cast<double*>(nullptr), sz,
                       static_cast<const double*>(nullptr), static_cast<const double*>(nullptr),
                       1e-5, mean.data(), rstd.data());
    for (double m : mean) EXPECT_EQ(m, 0.0);
    group_norm_backward(none.data(), none.data(), sz, static_cast<const double*>(nullptr),
                        mean.data(), rstd.data(), static_cast<double*>(nullptr), dw.data(),
                        db.data());
    EXPECT_EQ(dw, std::vector<double>(4, 0.0));
    EXPECT_EQ(db, std::vector<double>(4, 0.0));
  }
}

TEST(GroupNorm, RejectsBadArguments) {
  const char* op = "group_norm";
  EXPECT_THROW(group_norm_sizes(op, {6}, 1), ValueError);
  EXPECT_THROW(group_norm_sizes(op, {2, 6}, 0), ValueError);
  EXPECT_THROW(group_norm_sizes(op, {2, 6}, -3), ValueError);
  EXPECT_NO_THROW(group_norm_sizes(op, {2, 6}, 6));
  try {
    group_norm_sizes(op, {2, 6, 5}, 4);
    ADD_FAILURE() << "6 channels in 4 groups accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by num_groups"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(2, 6, 5) and num_groups=4"), std::string::npos);
  }
}

// ---- layer norm

TEST(LayerNorm, ForwardMatchesDefinitionAndGradientsMatchFiniteDifferences) {
  const LayerNormSizes sz = layer_norm_sizes("layer_norm", {3, 2, 2, 3}, {2, 3});
  ASSERT_EQ(sz.rows, 6);
  ASSERT_EQ(sz.cols, 6);
  const int64_t total = sz.rows * sz.cols;
  const auto x = random_vector(total, 41, 0.5, 2.0), w = random_vector(6, 42),
             b = random_vector(6, 43), r = random_vector(total, 44);
  const double eps = 1e-3;
  auto forward = [&](const std::vector<double>& xv, const std::vector<double>& wv,
                     const std::vector<double>& bv) {
    std::vector<double> y(total), mean(sz.rows), rstd(sz.rows);
    layer_norm_forward(xv.data(), y.data(), sz, wv.data(), bv.data(), eps, mean.data(),
                       rstd.data());
    return y;
  };
  const auto y = forward(x, w, b);
  for (int64_t row = 0; row < sz.rows; ++row) {
    long double mu = 0, var = 0;
    for (int64_t i = 0; i < 6; ++i) mu += x[row * 6 + i];
    mu /= 6;
    for (int64_t i = 0; i < 6; ++i) var += (x[row * 6 + i] - mu) * (x[row * 6 + i] - mu);
    var /= 6;
    for (int64_t i = 0; i < 6; ++i)
      EXPECT_NEAR(y[row * 6 + i], double((x[row * 6 + i] - mu) / std::sqrt(var + eps) * w[i] + b[i]),
                  1e-12);
  }
  std::vector<double> y2(total), mean(sz.rows), rstd(sz.rows), dx(total), dw(6), db(6);
  layer_norm_forward(x.data(), y2.data(), sz, w.data(), b.data(), eps, mean.data(), rstd.data());
  layer_norm_backward(r.data(), x.data(), sz, w.data(), mean.data(), rstd.data(), dx.data(),
                      dw.data(), db.data());
  const auto ndx = testing::numeric_vjp([&](const auto& v) { return forward(v, w, b); }, x, r);
  const auto ndw = testing::numeric_vjp([&](const auto& v) { return forward(x, v, b); }, w, r);
  const auto ndb = testing::numeric_vjp([&](const auto& v) { return forward(x, w, v); }, b, r);
  for (int64_t k = 0; k < total; ++k) EXPECT_NEAR(dx[k], ndx[k], 1e-6) << "dx " << k;
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(dw[i], ndw[i], 1e-6) << "dweight " << i;
    EXPECT_NEAR(db[i], ndb[i], 1e-6) << "dbias " << i;
  }
  // Without weight: dx as with weight 1; outputs not asked for are skipped.
  std::vector<double> ones(6, 1.0), dx_plain(total), dx_ones(total), dw_ones(6), db_ones(6);
  layer_norm_backward(r.data(), x.data(), sz, static_cast<const double*>(nullptr), mean.data(),
                      rstd.data(), dx_plain.data(), static_cast<double*>(nullptr),
                      static_cast<double*>(nullptr));
  layer_norm_backward(r.data(), x.data(), sz, ones.data(), mean.data(), rstd.data(),
                      dx_ones.data(), dw_ones.data(), db_ones.data());
  for (int64_t k = 0; k < total; ++k) EXPECT_NEAR(dx_plain[k], dx_ones[k], 1e-14);
}

TEST(LayerNorm, KnownAnswerInFloatWithALargeMean) {
  // Row 1e4 + {1, 2, 3, 4}: mean 10002.5, variance 1.25, no affine parameters.
  const LayerNormSizes sz = layer_norm_sizes("layer_norm", {1, 4}, {4});
  const std::vector<float> x = {10001, 10002, 10003, 10004};
  std::vector<float> y(4), mean(1), rstd(1);
  layer_norm_forward(x.data(), y.data(), sz, static_cast<const float*>(nullptr),
                     static_cast<const float*>(nullptr), 1e-5, mean.data(), rstd.data());
  const double is = 1 / std::sqrt(1.25 + 1e-5);
  EXPECT_FLOAT_EQ(mean[0], 10002.5f);
  const double want[4] = {-1.5 * is, -0.5 * is, 0.5 * is, 1.5 * is};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(y[k], want[k], 1e-6);
}

TEST(LayerNorm, RejectsBadShapes) {
  const char* op = "layer_norm";
  EXPECT_THROW(layer_norm_sizes(op, {2, 3}, {}), ValueError);
  EXPECT_THROW(layer_norm_sizes(op, {2, 3}, {2}), ValueError);
  EXPECT_THROW(layer_norm_sizes(op, {3}, {2, 3}), ValueError);
  EXPECT_NO_THROW(layer_norm_sizes(op, {2, 3}, {2, 3}));
  try {
    layer_norm_sizes(op, {2, 3, 4}, {3, 5});
    ADD_FAILURE() << "normalized_shape (3, 5) accepted for (2, 3, 4)";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("(3, 5)"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(2, 3, 4)"), std::string::npos);
  }
}

// ---- local response norm

TEST(LocalResponseNorm, ForwardMatchesDefinitionAndGradientMatchesFiniteDifferences) {
  for (const int64_t size : {1, 2, 3, 4, 7}) {
    const LocalResponseNormArgs args{size, 0.3, 0.75, 1.5};
    const Shape shape{2, 5, 3};
    const BatchNormSizes sz = local_response_norm_sizes("local_response_norm", shape, args);
    const int64_t total = 30;
    const auto x = random_vector(total, 50 + uint32_t(size)), r = random_vector(total, 60);
    auto forward = [&](const std::vector<double>& v) {
      std::vector<double> y(total);
      local_response_norm_forward(v.data(), y.data(), sz, args);
      return y;
    };
    const auto y = forward(x);
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 5; ++c)
        for (int64_t s = 0; s < 3; ++s) {
          long double sq = 0;
          for (int64_t j = c - size / 2; j <= c + (size - 1) / 2; ++j)
            if (j >= 0 && j < 5) sq += x[(n * 5 + j) * 3 + s] * x[(n * 5 + j) * 3 + s];
          const long double div = std::pow(1.5L + 0.3L / size * sq, 0.75L);
          EXPECT_NEAR(y[(n * 5 + c) * 3 + s], double(x[(n * 5 + c) * 3 + s] / div), 1e-13);
        }
    std::vector<double> dx(total);
    local_response_norm_backward(r.data(), x.data(), dx.data(), sz, args);
    const auto want = testing::numeric_vjp(forward, x, r);
    for (int64_t k = 0; k < total; ++k) EXPECT_NEAR(dx[k], want[k], 1e-7) << size << " " << k;
  }
}

TEST(LocalResponseNorm, RejectsBadArguments) {
  const char* op = "local_response_norm";
  EXPECT_THROW(local_response_norm_sizes(op, {2, 3}, {2}), ValueError);
  EXPECT_THROW(local_response_norm_sizes(op, {2, 3, 4}, {0}), ValueError);
  EXPECT_THROW(local_response_norm_sizes(op, {2, 3, 4}, {-1}), ValueError);
  EXPECT_NO_THROW(local_response_norm_sizes(op, {2, 3, 4, 5, 6}, {3}));
}

}  // namespace
}  // namespace kiln
