#include <gtest/gtest.h>

#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/resample.h"
#include "tests/finite_diff.h"

namespace kiln {
namespace {

using testing::test_values;

TEST(Resample, KnownAnswers) {
  // A 2x2 image to 3x3 with align_corners: the corners stay, the rest interpolates.
  const std::vector<double> x = {0, 1, 2, 3};
  std::vector<double> y(9);
  resample_forward<double>(x.data(), y.data(), {1, 2, 2, 3, 3},
                           {Resample::Bilinear, true, 0, 0});
  const std::vector<double> want = {0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3};
  for (size_t i = 0; i < 9; ++i) EXPECT_DOUBLE_EQ(y[i], want[i]);
  // Nearest doubling repeats each pixel twice along each axis.
  std::vector<double> z(16);
  resample_forward<double>(x.data(), z.data(), {1, 2, 2, 4, 4}, {});
  const std::vector<double> twice = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
  EXPECT_EQ(z, twice);
  // Without align_corners, 2 -> 4 samples at 0.25-pixel offsets, clamped at the edge.
  std::vector<double> row(4);
  const std::vector<double> edge = {0, 1};
  resample_forward<double>(edge.data(), row.data(), {1, 1, 2, 1, 4},
                           {Resample::Bilinear, false, 0, 0});
  const std::vector<double> quarter = {0, 0.25, 0.75, 1};
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(row[i], quarter[i]);
}

// Forward is linear in x, so backward must be its adjoint: <dy, A x> == <A^T dy, x>.
TEST(Resample, BackwardIsTheAdjointOfForward) {
  set_num_threads(2);
  const std::vector<ResampleSizes> shapes = {{6, 5, 7, 9, 4}, {3, 4, 4, 8, 8}, {2, 7, 3, 3, 11}};
  const std::vector<ResampleOptions> modes = {{Resample::Nearest, false, 0, 0},
                                              {Resample::NearestExact, false, 0, 0},
                                              {Resample::Bilinear, false, 0, 0},
                                              {Resample::Bilinear, true, 0, 0},
                                              {Resample::Bilinear, false, 1.9, 1.5},
                                              {Resample::Bicubic, false, 0, 0},
                                              {Resample::Bicubic, true, 0, 0},
                                              {Resample::Bicubic, false, 1.9, 1.5},
                                              {Resample::Bilinear, false, 0, 0, true},
                                              {Resample::Bicubic, false, 0, 0, true},
                                              {Resample::Bicubic, true, 0.3, 0.7, true}};
  for (const ResampleSizes& s : shapes)
    for (const ResampleOptions& o : modes) {
      const int64_t n_in = s.planes * s.in_h * s.in_w, n_out = s.planes * s.out_h * s.out_w;
      const std::vector<double> x = test_values(n_in, 1), g = test_values(n_out, 2);
      std::vector<double> y(n_out), dx(n_in);
      resample_forward<double>(x.data(), y.data(), s, o);
      resample_backward<double>(g.data(), dx.data(), s, o);
      double lhs = 0, rhs = 0;
      for (int64_t i = 0; i < n_out; ++i) lhs += g[i] * y[i];
      for (int64_t i = 0; i < n_in; ++i) rhs += dx[i] * x[i];
      EXPECT_NEAR(lhs, rhs, 1e-10 * (1 + std::abs(lhs)));
    }
}

// A scale factor that does not fit the sizes never reads or writes outside the planes.
TEST(Resample, InconsistentScaleStaysInBounds) {
  std::vector<double> x(6, 1.0), y(2 * 11), dx(6);
  resample_forward<double>(x.data(), y.data(), {2, 1, 3, 1, 11},
                           {Resample::Bilinear, false, 0, 0.2});
  for (double v : y) EXPECT_DOUBLE_EQ(v, 1.0);
  resample_backward<double>(y.data(), dx.data(), {2, 1, 3, 1, 11},
                            {Resample::Bilinear, false, 0, 0.2});
}

// Bicubic with align_corners, 3 -> 5: samples the ramp 0, 1, 2 at 0, 0.5, 1, 1.5, 2,
// the taps beyond the edges clamped to the edge pixels (PyTorch's answer).
TEST(Resample, BicubicKnownAnswer) {
  const std::vector<double> x = {0, 1, 2};
  std::vector<double> y(5);
  resample_forward<double>(x.data(), y.data(), {1, 1, 3, 1, 5}, {Resample::Bicubic, true, 0, 0});
  // At 0.5 the taps are x[0] (x[-1] clamped), x[0], x[1], x[2], weighing
  // k2(1.5) = -0.09375, k1(0.5) = 0.59375, k1(0.5), k2(1.5): 0.59375 - 0.1875 (the ramp's
  // 0.5 but for the clamped edge); at 1.5 x[3] is clamped to x[2] alike.
  EXPECT_DOUBLE_EQ(y[0], 0.0);
  EXPECT_NEAR(y[1], 0.40625, 1e-12);
  EXPECT_NEAR(y[2], 1.0, 1e-12);
  EXPECT_NEAR(y[3], 1.59375, 1e-12);
  EXPECT_DOUBLE_EQ(y[4], 2.0);
}

// Antialiased downsampling by an integer factor with the bilinear (triangle) filter
// averages each source window with weights 1, 2, ..., 2, 1 (factor 2: taps 0.5 from the
// window's neighbours): a constant stays constant and the weights sum to 1.
TEST(Resample, AntialiasKeepsConstants) {
  std::vector<double> x(2 * 12 * 10, 3.0), y(2 * 4 * 3);
  for (Resample mode : {Resample::Bilinear, Resample::Bicubic}) {
    resample_forward<double>(x.data(), y.data(), {2, 12, 10, 4, 3}, {mode, false, 0, 0, true});
    for (double v : y) EXPECT_NEAR(v, 3.0, 1e-12);
  }
}

// Antialias is only defined for bilinear and bicubic.
TEST(Resample, AntialiasNeedsALinearMode) {
  std::vector<float> x(4), y(1);
  EXPECT_THROW(resample_forward<float>(x.data(), y.data(), {1, 2, 2, 1, 1},
                                       {Resample::Nearest, false, 0, 0, true}),
               ValueError);
}

TEST(Resample, EmptySizesThrow) {
  std::vector<float> x(4), y(4);
  EXPECT_THROW(resample_forward<float>(x.data(), y.data(), {1, 2, 2, 0, 2}, {}), ValueError);
}

}  // namespace
}  // namespace kiln
