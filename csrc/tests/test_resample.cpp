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
                                              {Resample::Bilinear, false, 1.9, 1.5}};
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

TEST(Resample, EmptySizesThrow) {
  std::vector<float> x(4), y(4);
  EXPECT_THROW(resample_forward<float>(x.data(), y.data(), {1, 2, 2, 0, 2}, {}), ValueError);
}

}  // namespace
}  // namespace kiln
