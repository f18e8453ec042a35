// CUDA gradient clipping against the CPU kernels: the per-tensor norms of every norm
// type (tensors spanning several norm blocks, empty ones, NaN), and scale_ / clamp_
// over a list of tensors in one launch.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "compare.h"
#include "cpu/optim.h"
#include "cuda/optim.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

// Host tensors of these sizes and their device copies.
template <typename T>
struct Tensors {
  std::vector<std::vector<T>> host;
  std::vector<std::unique_ptr<DeviceBuffer<T>>> device;
  explicit Tensors(const std::vector<size_t>& sizes) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      host.push_back(random_values<T>(sizes[i], 30 + i));
      device.push_back(std::make_unique<DeviceBuffer<T>>(host.back()));
    }
  }
  template <typename U>
  std::vector<Span<U>> host_spans() {
    std::vector<Span<U>> s;
    for (auto& h : host) s.push_back({h.data(), static_cast<int64_t>(h.size())});
    return s;
  }
  template <typename U>
  std::vector<Span<U>> device_spans() {
    std::vector<Span<U>> s;
    for (size_t i = 0; i < host.size(); ++i)
      s.push_back({device[i]->get(), static_cast<int64_t>(host[i].size())});
    return s;
  }
};

const std::vector<size_t> kSizes = {3, 0, 40000, 17, 16384, 1};

template <typename T>
void expect_norms_match() {
  const double inf = std::numeric_limits<double>::infinity();
  Tensors<T> t(kSizes);
  for (double q : {2.0, 1.0, 0.0, 3.0, 0.5, inf, -inf}) {
    const std::vector<double> cpu = kiln::tensor_norms<T>(t.template host_spans<const T>(), q);
    const std::vector<double> gpu = cuda::tensor_norms<T>(t.template device_spans<const T>(), q);
    // The CPU sums float tensors in float lanes, the GPU in double.
    expect_close(gpu, cpu, "tensor_norms", std::is_same_v<T, float> ? 1e-5 : 1e-12);
  }
}

TEST(CudaOptim, NormsMatchTheCpu) {
  KILN_REQUIRE_DEVICE();
  expect_norms_match<float>();
  expect_norms_match<double>();
}

TEST(CudaOptim, NanWinsTheInfinityNorm) {
  KILN_REQUIRE_DEVICE();
  DeviceBuffer<float> a(std::vector<float>{1, NAN, 3});
  const std::vector<Span<const float>> spans = {{a.get(), 3}};
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(std::isnan(cuda::tensor_norms<float>(spans, inf)[0]));
}

template <typename T>
void expect_scale_and_clamp_match() {
  Tensors<T> t(kSizes);
  kiln::scale_<T>(t.template host_spans<T>(), 0.37);
  cuda::scale_<T>(t.template device_spans<T>(), 0.37);
  kiln::clamp_<T>(t.template host_spans<T>(), -0.5, 0.8);
  cuda::clamp_<T>(t.template device_spans<T>(), -0.5, 0.8);
  for (size_t i = 0; i < kSizes.size(); ++i)
    expect_close(t.device[i]->host(), t.host[i], "scale_ + clamp_");
}

TEST(CudaOptim, ScaleAndClampMatchTheCpu) {
  KILN_REQUIRE_DEVICE();
  expect_scale_and_clamp_match<float>();
  expect_scale_and_clamp_match<double>();
}

TEST(CudaOptim, BadArgumentsAreRefusedBeforeALaunch) {
  EXPECT_THROW(cuda::tensor_norms<float>({}, std::nan("")), ValueError);
  EXPECT_THROW(cuda::clamp_<float>({}, std::nan(""), 1.0), ValueError);
}

}  // namespace
}  // namespace kiln::cuda
