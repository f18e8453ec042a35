// CUDA activations against the CPU kernels on the same random inputs: every
// pointwise op of KILN_POINTWISE_OPS (forward and backward, kinks and NaN
// included), softmax/log_softmax over rows and columns, prelu with one or C weights.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "compare.h"
#include "cpu/activation.h"
#include "cuda/activation.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

template <typename T>
void expect_pointwise_matches(Pointwise op) {
  const PointwiseInfo& info = pointwise_info(op);
  const T param = T(info.default_param);
  std::vector<T> x = random_values<T>(1003, 1, -7, 7);
  const T specials[] = {T(0), T(-3), T(3), T(-0.5), T(20), T(-20),
                        std::numeric_limits<T>::quiet_NaN()};
  for (size_t i = 0; i < std::size(specials); ++i) x[i] = specials[i];
  const std::vector<T> dy = random_values<T>(x.size(), 2);
  const int64_t n = static_cast<int64_t>(x.size());

  std::vector<T> y_cpu(n), dx_cpu(n);
  kiln::pointwise_forward(op, param, x.data(), y_cpu.data(), n);
  const std::vector<T>& saved = info.saved == Saved::Output ? y_cpu : x;
  kiln::pointwise_backward(op, param, saved.data(), dy.data(), dx_cpu.data(), n);

  DeviceBuffer<T> d_x(x), d_y(n), d_saved(saved), d_dy(dy), d_dx(n);
  cuda::pointwise_forward(op, param, d_x.get(), d_y.get(), n);
  cuda::pointwise_backward(op, param, d_saved.get(), d_dy.get(), d_dx.get(), n);
  const std::string name = std::string(info.name) + (info.variant ? info.variant : "");
  expect_close(d_y.host(), y_cpu, (name + " forward").c_str());
  expect_close(d_dx.host(), dx_cpu, (name + " backward").c_str());
}

TEST(CudaActivation, EveryPointwiseOpMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Pointwise op : kPointwiseOps) {
    expect_pointwise_matches<float>(op);
    expect_pointwise_matches<double>(op);
  }
}

template <typename T>
void expect_softmax_matches(int64_t outer, int64_t dim, int64_t inner, bool log) {
  const int64_t n = outer * dim * inner;
  const std::vector<T> x = random_values<T>(n, 3, -10, 10), dy = random_values<T>(n, 4);
  std::vector<T> y_cpu(n), dx_cpu(n);
  kiln::softmax_forward(x.data(), y_cpu.data(), outer, dim, inner, log);
  kiln::softmax_backward(y_cpu.data(), dy.data(), dx_cpu.data(), outer, dim, inner, log);

  DeviceBuffer<T> d_x(x), d_y(n), d_dy(dy), d_dx(n);
  cuda::softmax_forward(d_x.get(), d_y.get(), outer, dim, inner, log);
  cuda::softmax_backward(d_y.get(), d_dy.get(), d_dx.get(), outer, dim, inner, log);
  expect_close(d_y.host(), y_cpu, log ? "log_softmax forward" : "softmax forward");
  expect_close(d_dx.host(), dx_cpu, log ? "log_softmax backward" : "softmax backward");
}

TEST(CudaActivation, SoftmaxMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (bool log : {false, true}) {
    expect_softmax_matches<float>(7, 13, 1, log);
    expect_softmax_matches<float>(3, 1001, 1, log);  // rows longer than a block
    expect_softmax_matches<float>(5, 9, 11, log);    // columns
    expect_softmax_matches<float>(2, 1, 3, log);
    expect_softmax_matches<double>(6, 257, 1, log);
    expect_softmax_matches<double>(3, 17, 5, log);
  }
}

template <typename T>
void expect_prelu_matches(int64_t outer, int64_t channels, int64_t inner, int64_t weight_numel) {
  const int64_t n = outer * channels * inner;
  const std::vector<T> x = random_values<T>(n, 5), dy = random_values<T>(n, 6);
  const std::vector<T> w = random_values<T>(weight_numel, 7, 0, 0.5);
  std::vector<T> y_cpu(n), dx_cpu(n), dw_cpu(weight_numel);
  kiln::prelu_forward(x.data(), w.data(), y_cpu.data(), outer, channels, inner, weight_numel);
  kiln::prelu_backward(x.data(), w.data(), dy.data(), dx_cpu.data(), dw_cpu.data(), outer,
                       channels, inner, weight_numel);

  DeviceBuffer<T> d_x(x), d_w(w), d_y(n), d_dy(dy), d_dx(n), d_dw(weight_numel);
  cuda::prelu_forward(d_x.get(), d_w.get(), d_y.get(), outer, channels, inner, weight_numel);
  cuda::prelu_backward(d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get(), outer, channels,
                       inner, weight_numel);
  expect_close(d_y.host(), y_cpu, "prelu forward");
  expect_close(d_dx.host(), dx_cpu, "prelu grad_input");
  expect_close(d_dw.host(), dw_cpu, "prelu grad_weight");
}

TEST(CudaActivation, PreluMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  expect_prelu_matches<float>(3, 5, 7, 5);
  expect_prelu_matches<float>(3, 5, 7, 1);
  expect_prelu_matches<float>(1, 1, 1001, 1);
  expect_prelu_matches<double>(4, 3, 333, 3);
  expect_prelu_matches<double>(4, 3, 333, 1);
}

TEST(CudaActivation, BadSizesAreRefusedBeforeALaunch) {
  EXPECT_THROW(cuda::prelu_forward<float>(nullptr, nullptr, nullptr, 1, 4, 1, 3), ValueError);
  EXPECT_THROW(cuda::softmax_forward<float>(nullptr, nullptr, -1, 2, 1, false), ValueError);
}

}  // namespace
}  // namespace kiln::cuda
