// CUDA dropout against the CPU kernel: the same masks from the same (seed, offset),
// the same outputs and gradients, for dropout and dropout2d.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/dropout.h"
#include "cuda/dropout.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

template <typename T>
void expect_same_as_cpu(int64_t groups, int64_t inner, double p, uint64_t seed, uint64_t offset) {
  const int64_t n = groups * inner;
  std::mt19937 gen(42);
  std::normal_distribution<double> normal;
  std::vector<T> x(n), dy(n);
  for (auto& v : x) v = T(normal(gen));
  for (auto& v : dy) v = T(normal(gen));
  if (n > 3) x[3] = T(NAN);

  std::vector<T> y_cpu(n), dx_cpu(n);
  std::vector<uint8_t> mask_cpu(groups);
  kiln::dropout_forward(x.data(), y_cpu.data(), mask_cpu.data(), groups, inner, p, seed, offset);
  kiln::dropout_backward(dy.data(), mask_cpu.data(), dx_cpu.data(), groups, inner, p);

  DeviceBuffer<T> dx_in(x), y(n), ddy(dy), dx(n);
  DeviceBuffer<uint8_t> mask(groups);
  dropout_forward(dx_in.get(), y.get(), mask.get(), groups, inner, p, seed, offset);
  dropout_backward(ddy.get(), mask.get(), dx.get(), groups, inner, p);
  EXPECT_EQ(mask.host(), mask_cpu);
  const auto y_gpu = y.host(), dx_gpu = dx.host();
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(y_cpu[i])) {
      EXPECT_TRUE(std::isnan(y_gpu[i])) << i;
    } else {
      EXPECT_EQ(y_gpu[i], y_cpu[i]) << i;
    }
    EXPECT_EQ(dx_gpu[i], dx_cpu[i]) << i;
  }
}

TEST(CudaDropout, MasksAndOutputsEqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  expect_same_as_cpu<float>(100003, 1, 0.3, 1234, 77);
  expect_same_as_cpu<double>(4097, 1, 0.5, 9, 1u << 20);
  expect_same_as_cpu<float>(1, 1, 0.9, 5, 0);
}

TEST(CudaDropout, Dropout2dMasksWholeChannels) {
  KILN_REQUIRE_DEVICE();
  expect_same_as_cpu<float>(8 * 13, 7 * 5, 0.25, 31, 3);
  expect_same_as_cpu<double>(3, 1000, 0.5, 7, 11);
}

TEST(CudaDropout, EdgeProbabilities) {
  KILN_REQUIRE_DEVICE();
  expect_same_as_cpu<float>(1000, 1, 0.0, 1, 0);
  expect_same_as_cpu<float>(1000, 2, 1.0, 1, 0);
}

TEST(CudaDropout, BadProbabilityIsRefusedBeforeALaunch) {
  // The check runs on the host: no device needed.
  EXPECT_THROW(dropout_forward<float>(nullptr, nullptr, nullptr, 4, 1, 1.5, 0, 0), ValueError);
}

}  // namespace
}  // namespace kiln::cuda
