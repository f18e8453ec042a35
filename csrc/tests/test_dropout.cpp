#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "common/rng.h"
#include "cpu/dropout.h"

namespace kiln {
namespace {

TEST(Dropout, MaskFollowsPhiloxAndScalesExactly) {
  const int64_t n = 1001;
  std::vector<float> x(n, 2.0f), y(n);
  std::vector<uint8_t> mask(n);
  const double p = 0.3;
  dropout_forward(x.data(), y.data(), mask.data(), n, 1, p, 1234, 77);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = philox4x32(1234, 77 + i / 4)[i % 4];
    EXPECT_EQ(mask[i], double(uniform01(bits)) >= p ? 1 : 0) << i;
    EXPECT_EQ(y[i], mask[i] ? 2.0f * float(1.0 / 0.7) : 0.0f);
    kept += mask[i];
  }
  EXPECT_NEAR(double(kept) / n, 0.7, 0.05);
  EXPECT_EQ(dropout_counters(n), 251);
}

TEST(Dropout, IndependentOfThreadCount) {
  const int64_t n = 1 << 18;
  std::vector<float> x(n, 1.0f), y1(n), y2(n);
  std::vector<uint8_t> m1(n), m2(n);
  set_num_threads(1);
  dropout_forward(x.data(), y1.data(), m1.data(), n, 1, 0.5, 9, 0);
  set_num_threads(2);
  dropout_forward(x.data(), y2.data(), m2.data(), n, 1, 0.5, 9, 0);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(y1, y2);
}

TEST(Dropout, ChannelGroupsAndBackward) {
  const int64_t groups = 6, inner = 5;
  std::vector<double> x(groups * inner, 1.0), y(x.size()), dx(x.size());
  std::vector<uint8_t> mask(groups);
  dropout_forward(x.data(), y.data(), mask.data(), groups, inner, 0.5, 3, 0);
  dropout_backward(x.data(), mask.data(), dx.data(), groups, inner, 0.5);
  for (int64_t i = 0; i < groups * inner; ++i) {
    EXPECT_EQ(y[i], mask[i / inner] ? 2.0 : 0.0);
    EXPECT_EQ(dx[i], y[i]);
  }
}

TEST(Dropout, EdgeProbabilities) {
  std::vector<float> x(64, 3.0f), y(64);
  std::vector<uint8_t> mask(64);
  dropout_forward(x.data(), y.data(), mask.data(), 64, 1, 1.0, 1, 0);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  dropout_forward(x.data(), y.data(), mask.data(), 64, 1, 0.0, 1, 0);
  for (float v : y) EXPECT_EQ(v, 3.0f);
  EXPECT_THROW(dropout_forward(x.data(), y.data(), mask.data(), 64, 1, 1.5, 1, 0), ValueError);
  EXPECT_THROW(check_dropout_p("dropout", -0.1), ValueError);
  EXPECT_THROW(check_dropout_p("dropout", std::nan("")), ValueError);
}

}  // namespace
}  // namespace kiln
