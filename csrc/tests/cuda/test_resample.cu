// CUDA interpolate (nearest, nearest-exact, bilinear) against the CPU kernels on
// the same inputs, forward and backward.
#include <gtest/gtest.h>

#include <vector>

#include "compare.h"
#include "cpu/resample.h"
#include "cuda/resample.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

template <typename T>
void check(const ResampleSizes& s, const ResampleOptions& o) {
  const int64_t nin = s.planes * s.in_h * s.in_w, nout = s.planes * s.out_h * s.out_w;
  const auto x = random_values<T>(nin, 1), dy = random_values<T>(nout, 2);
  std::vector<T> y(nout), dx(nin);
  kiln::resample_forward(x.data(), y.data(), s, o);
  kiln::resample_backward(dy.data(), dx.data(), s, o);
  DeviceBuffer<T> gx(x), gdy(dy), gy(nout), gdx(nin);
  cuda::resample_forward(gx.get(), gy.get(), s, o);
  cuda::resample_backward(gdy.get(), gdx.get(), s, o);
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gdx.host(), dx, "dx");
}

TEST(CudaInterpolate, EveryModeEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  const ResampleSizes up{6, 5, 7, 13, 11}, down{4, 17, 9, 6, 4}, twice{3, 4, 5, 8, 10};
  for (const ResampleSizes& s : {up, down, twice}) {
    check<float>(s, {Resample::Nearest, false, 0, 0});
    check<double>(s, {Resample::NearestExact, false, 0, 0});
    check<float>(s, {Resample::Bilinear, false, 0, 0});
    check<double>(s, {Resample::Bilinear, true, 0, 0});
  }
  check<float>({2, 4, 4, 10, 10}, {Resample::Bilinear, false, 2.5, 2.5});  // scale given
  check<double>({2, 3, 5, 7, 8}, {Resample::Nearest, false, 2.4, 1.7});
}

TEST(CudaInterpolate, EmptySizesAreRefusedBeforeALaunch) {
  EXPECT_THROW(cuda::resample_forward<float>(nullptr, nullptr, {1, 0, 3, 2, 2}, {}), ValueError);
}

}  // namespace
}  // namespace kiln::cuda
