// CUDA pooling against the CPU kernels on the same inputs: outputs, argmax indices
// and gradients of max, average, adaptive and fractional max pooling.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

#include "compare.h"
#include "cpu/pool.h"
#include "cuda/pool.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

Pool2dWindow window(int64_t k0, int64_t k1, int64_t s0, int64_t s1, int64_t p0, int64_t p1,
                    int64_t d0 = 1, int64_t d1 = 1, bool ceil_mode = false) {
  Pool2dWindow w;
  w.kernel[0] = k0, w.kernel[1] = k1, w.stride[0] = s0, w.stride[1] = s1;
  w.padding[0] = p0, w.padding[1] = p1, w.dilation[0] = d0, w.dilation[1] = d1;
  w.ceil_mode = ceil_mode;
  return w;
}

template <typename T>
void check_max_pool(const Shape& shape, const Pool2dWindow& w) {
  const Pool2dSizes s = pool2d_sizes("test", shape, w);
  const int64_t nin = s.planes * s.in_h * s.in_w, nout = s.planes * s.out_h * s.out_w;
  auto x = random_values<T>(nin, 1);
  x[nin / 2] = T(NAN);  // NaN wins its windows
  x[1] = x[2];          // a tie: the first position wins
  const auto dy = random_values<T>(nout, 2);
  std::vector<T> y(nout), y_only(nout), dx(nin);
  std::vector<int64_t> ind(nout);
  kiln::max_pool2d_forward(x.data(), y.data(), ind.data(), s, w);
  kiln::max_pool2d_forward(x.data(), y_only.data(), static_cast<int64_t*>(nullptr), s, w);
  kiln::max_pool2d_backward("test", dy.data(), ind.data(), dx.data(), s);

  DeviceBuffer<T> gx(x), gdy(dy), gy(nout), gy_only(nout), gdx(nin);
  DeviceBuffer<int64_t> gind(nout);
  cuda::max_pool2d_forward(gx.get(), gy.get(), gind.get(), s, w);
  cuda::max_pool2d_forward(gx.get(), gy_only.get(), static_cast<int64_t*>(nullptr), s, w);
  cuda::max_pool2d_backward("test", gdy.get(), gind.get(), gdx.get(), s);
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gy_only.host(), y_only, "y without indices");
  EXPECT_EQ(gind.host(), ind);
  expect_close_scaled(gdx.host(), dx, "dx");
}

TEST(CudaMaxPool2d, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_max_pool<float>({2, 3, 11, 9}, window(3, 3, 2, 2, 1, 1));
  check_max_pool<double>({3, 7, 8}, window(2, 3, 1, 2, 1, 0, 2, 1));
  check_max_pool<float>({1, 2, 10, 10}, window(3, 2, 3, 2, 1, 1, 1, 1, true));
}

template <typename T>
void check_avg_pool(const Shape& shape, const Pool2dWindow& w, bool count_include_pad,
                    std::optional<int64_t> divisor) {
  const Pool2dSizes s = pool2d_sizes("test", shape, w);
  const int64_t nin = s.planes * s.in_h * s.in_w, nout = s.planes * s.out_h * s.out_w;
  const auto x = random_values<T>(nin, 3), dy = random_values<T>(nout, 4);
  std::vector<T> y(nout), dx(nin);
  kiln::avg_pool2d_forward(x.data(), y.data(), s, w, count_include_pad, divisor);
  kiln::avg_pool2d_backward(dy.data(), dx.data(), s, w, count_include_pad, divisor);
  DeviceBuffer<T> gx(x), gdy(dy), gy(nout), gdx(nin);
  cuda::avg_pool2d_forward(gx.get(), gy.get(), s, w, count_include_pad, divisor);
  cuda::avg_pool2d_backward(gdy.get(), gdx.get(), s, w, count_include_pad, divisor);
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gdx.host(), dx, "dx");
}

TEST(CudaAvgPool2d, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_avg_pool<float>({2, 3, 11, 9}, window(3, 3, 2, 2, 1, 1), true, std::nullopt);
  check_avg_pool<float>({2, 3, 11, 9}, window(3, 2, 2, 1, 1, 1), false, std::nullopt);
  check_avg_pool<double>({3, 10, 7}, window(2, 2, 3, 2, 1, 0, 1, 1, true), true, std::nullopt);
  check_avg_pool<double>({1, 2, 9, 9}, window(4, 3, 2, 2, 2, 1, 1, 1, true), false, 5);
}

template <typename T>
void check_adaptive(const Shape& shape, int64_t out_h, int64_t out_w) {
  const Pool2dSizes s = adaptive_pool2d_sizes("test", shape, out_h, out_w);
  const int64_t nin = s.planes * s.in_h * s.in_w, nout = s.planes * s.out_h * s.out_w;
  const auto x = random_values<T>(nin, 5), dy = random_values<T>(nout, 6);
  std::vector<T> y(nout), dx(nin), ymax(nout);
  std::vector<int64_t> ind(nout);
  kiln::adaptive_avg_pool2d_forward(x.data(), y.data(), s);
  kiln::adaptive_avg_pool2d_backward(dy.data(), dx.data(), s);
  kiln::adaptive_max_pool2d_forward(x.data(), ymax.data(), ind.data(), s);
  DeviceBuffer<T> gx(x), gdy(dy), gy(nout), gdx(nin), gymax(nout);
  DeviceBuffer<int64_t> gind(nout);
  cuda::adaptive_avg_pool2d_forward(gx.get(), gy.get(), s);
  cuda::adaptive_avg_pool2d_backward(gdy.get(), gdx.get(), s);
  cuda::adaptive_max_pool2d_forward(gx.get(), gymax.get(), gind.get(), s);
  expect_close_scaled(gy.host(), y, "avg y");
  expect_close_scaled(gdx.host(), dx, "avg dx");
  expect_close_scaled(gymax.host(), ymax, "max y");
  EXPECT_EQ(gind.host(), ind);
}

TEST(CudaAdaptivePool2d, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_adaptive<float>({2, 3, 11, 9}, 4, 5);   // overlapping windows
  check_adaptive<double>({3, 7, 8}, 7, 8);      // identity
  check_adaptive<float>({2, 5, 6, 6}, 1, 1);    // global
  check_adaptive<double>({1, 2, 5, 3}, 8, 7);   // upsampling windows
}

template <typename T>
void check_fractional(const Shape& shape, int64_t kh, int64_t kw, int64_t oh, int64_t ow) {
  const Shape samples_shape{shape.size() == 4 ? shape[0] : 1, shape[shape.size() - 3], 2};
  const Pool2dSizes s =
      fractional_max_pool2d_sizes("test", shape, kh, kw, oh, ow, samples_shape);
  const int64_t nin = s.planes * s.in_h * s.in_w, nout = s.planes * s.out_h * s.out_w;
  const auto x = random_values<T>(nin, 7), u = random_values<T>(s.planes * 2, 8, 0, 1);
  std::vector<T> y(nout);
  std::vector<int64_t> ind(nout);
  kiln::fractional_max_pool2d_forward(x.data(), u.data(), y.data(), ind.data(), s, kh, kw);
  DeviceBuffer<T> gx(x), gu(u), gy(nout);
  DeviceBuffer<int64_t> gind(nout);
  cuda::fractional_max_pool2d_forward(gx.get(), gu.get(), gy.get(), gind.get(), s, kh, kw);
  expect_close_scaled(gy.host(), y, "y");
  EXPECT_EQ(gind.host(), ind);
}

TEST(CudaFractionalMaxPool2d, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_fractional<float>({2, 3, 13, 11}, 2, 3, 6, 5);
  check_fractional<double>({3, 9, 9}, 3, 3, 4, 1);
}

TEST(CudaFractionalMaxPool2d, SampleOutsideTheUnitIntervalGivesNaN) {
  KILN_REQUIRE_DEVICE();
  const Pool2dSizes s = fractional_max_pool2d_sizes("test", {1, 1, 9, 9}, 2, 2, 4, 4, {1, 1, 2});
  DeviceBuffer<float> gx(random_values<float>(81, 9)), gu(std::vector<float>{1e30f, 0.5f}),
      gy(16);
  DeviceBuffer<int64_t> gind(16);
  cuda::fractional_max_pool2d_forward(gx.get(), gu.get(), gy.get(), gind.get(), s, 2, 2);
  const auto y = gy.host();
  const auto ind = gind.host();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(ind[0], -1);
}

}  // namespace
}  // namespace kiln::cuda
