// The CUDA optimizer steps and gradient clipping against the CPU kernels: every rule
// in each of its variants over a group of tensors of odd sizes (an empty one too) for
// several steps, a group larger than one launch's slot table, the argument checks;
// the per-tensor norms of every norm type (tensors spanning several norm blocks,
// empty ones, NaN), and scale_ / clamp_ over a list of tensors in one launch.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
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

// ------------------------------------------------------------------- steps
// One parameter group twice: host arrays for the CPU kernel and device copies for its
// CUDA twin, each with its own (host) step counters and mu_products, from the same
// start (random parameters; zero state, as the optimizers make it).
template <typename T>
struct Group {
  std::vector<size_t> sizes;
  std::vector<std::vector<T>> param, grad;
  std::array<std::vector<std::vector<T>>, 3> state;
  std::vector<std::unique_ptr<DeviceBuffer<T>>> d_param, d_grad;
  std::array<std::vector<std::unique_ptr<DeviceBuffer<T>>>, 3> d_state;
  std::vector<float> steps_cpu, steps_gpu, mu_cpu, mu_gpu;

  explicit Group(const std::vector<size_t>& s)
      : sizes(s), steps_cpu(s.size(), 0), steps_gpu(s.size(), 0), mu_cpu(s.size(), 1),
        mu_gpu(s.size(), 1) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      param.push_back(random_values<T>(sizes[i], 100 + i));
      d_param.push_back(std::make_unique<DeviceBuffer<T>>(param.back()));
      for (size_t k = 0; k < 3; ++k) {
        state[k].emplace_back(sizes[i], T(0));
        d_state[k].push_back(std::make_unique<DeviceBuffer<T>>(state[k].back()));
      }
    }
  }

  // New gradients for step `step` on both sides.
  void set_grads(int step) {
    grad.clear();
    d_grad.clear();
    for (size_t i = 0; i < sizes.size(); ++i) {
      grad.push_back(random_values<T>(sizes[i], 1000 * step + i, -2, 2));
      d_grad.push_back(std::make_unique<DeviceBuffer<T>>(grad.back()));
    }
  }

  // The slots of either side; fresh: SGD's momentum buffers are new this step.
  std::vector<ParamSlot<T>> slots(bool device, bool fresh) {
    std::vector<ParamSlot<T>> out(sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      ParamSlot<T>& s = out[i];
      s.numel = static_cast<int64_t>(sizes[i]);
      s.param = device ? d_param[i]->get() : param[i].data();
      s.grad = device ? d_grad[i]->get() : grad[i].data();
      for (size_t k = 0; k < 3; ++k)
        s.state[k] = device ? d_state[k][i]->get() : state[k][i].data();
      s.step = device ? &steps_gpu[i] : &steps_cpu[i];
      s.mu_product = device ? &mu_gpu[i] : &mu_cpu[i];
      s.fresh = fresh;
    }
    return out;
  }

  void expect_same(const std::string& what) {
    const double rtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const std::string name = what + " param " + std::to_string(i);
      expect_close(d_param[i]->host(), param[i], name.c_str(), rtol);
      for (size_t k = 0; k < 3; ++k) {
        const std::string buf = what + " state " + std::to_string(k) + " of " + std::to_string(i);
        expect_close(d_state[k][i]->host(), state[k][i], buf.c_str(), rtol);
      }
    }
    EXPECT_EQ(steps_gpu, steps_cpu) << what;
    EXPECT_EQ(mu_gpu, mu_cpu) << what;
  }
};

template <typename T>
using StepFn = std::function<void(const std::vector<ParamSlot<T>>&)>;

// `steps` steps of the CPU kernel and of its CUDA twin on one group of odd sizes.
template <typename T>
void expect_steps_match(const std::string& what, const StepFn<T>& cpu, const StepFn<T>& gpu,
                        const std::vector<size_t>& sizes = {3, 0, 1, 40001, 17, 1000},
                        int steps = 7) {
  Group<T> g(sizes);
  for (int step = 0; step < steps; ++step) {
    g.set_grads(step);
    cpu(g.slots(false, step == 0));
    gpu(g.slots(true, step == 0));
  }
  g.expect_same(what + (std::is_same_v<T, float> ? " float32" : " float64"));
}

// Both dtypes of rule `step` (a function template of kiln:: and of kiln::cuda::) with
// these options.
#define EXPECT_RULE_MATCHES(step, options, ...)                                           \
  do {                                                                                    \
    const auto o = options;                                                               \
    expect_steps_match<float>(                                                            \
        #step " " #options, [&](const auto& s) { kiln::step<float>(#step, s, o); },       \
        [&](const auto& s) { cuda::step<float>(#step, s, o); }, ##__VA_ARGS__);            \
    expect_steps_match<double>(                                                           \
        #step " " #options, [&](const auto& s) { kiln::step<double>(#step, s, o); },      \
        [&](const auto& s) { cuda::step<double>(#step, s, o); }, ##__VA_ARGS__);           \
  } while (0)

TEST(CudaOptim, SgdMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(sgd_step, (SgdOptions{0.1, 0, 0, 0, false, false}));
  EXPECT_RULE_MATCHES(sgd_step, (SgdOptions{0.1, 0.9, 0, 1e-2, true, false}));
  EXPECT_RULE_MATCHES(sgd_step, (SgdOptions{0.1, 0.9, 0.1, 0, false, true}));
}

TEST(CudaOptim, AdagradMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(adagrad_step, (AdagradOptions{0.1, 0.01, 0.01, 1e-10, false}));
  EXPECT_RULE_MATCHES(adagrad_step, (AdagradOptions{0.01, 0, 0, 1e-10, true}));
}

TEST(CudaOptim, RmspropMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(rmsprop_step, (RmspropOptions{0.01, 0.99, 1e-8, 0, 0, false, false}));
  EXPECT_RULE_MATCHES(rmsprop_step, (RmspropOptions{0.01, 0.9, 1e-8, 0.01, 0.9, true, false}));
  EXPECT_RULE_MATCHES(rmsprop_step, (RmspropOptions{0.01, 0.99, 1e-6, 0, 0.5, false, true}));
}

TEST(CudaOptim, AdamMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(adam_step, (AdamOptions{0.01, 0.9, 0.999, 1e-8, 0, false, false, false}));
  EXPECT_RULE_MATCHES(adam_step, (AdamOptions{0.01, 0.8, 0.99, 1e-8, 0.01, true, false, false}));
  EXPECT_RULE_MATCHES(adam_step, (AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.1, false, true, true}));
}

TEST(CudaOptim, AdadeltaMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(adadelta_step, (AdadeltaOptions{1.0, 0.9, 1e-6, 0, false}));
  EXPECT_RULE_MATCHES(adadelta_step, (AdadeltaOptions{0.5, 0.95, 1e-6, 0.01, true}));
}

TEST(CudaOptim, AdamaxMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(adamax_step, (AdamaxOptions{2e-3, 0.9, 0.999, 1e-8, 0, false}));
  EXPECT_RULE_MATCHES(adamax_step, (AdamaxOptions{0.01, 0.8, 0.99, 1e-8, 0.01, true}));
}

TEST(CudaOptim, NadamMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  EXPECT_RULE_MATCHES(nadam_step,
                      (NadamOptions{2e-3, 0.9, 0.999, 1e-8, 0, 4e-3, false, false}));
  EXPECT_RULE_MATCHES(nadam_step,
                      (NadamOptions{0.01, 0.9, 0.99, 1e-8, 0.01, 4e-3, true, false}));
  EXPECT_RULE_MATCHES(nadam_step,
                      (NadamOptions{0.01, 0.8, 0.999, 1e-8, 0.1, 4e-3, false, true}));
}

TEST(CudaOptim, RadamMatchesTheCpuBeforeAndAfterRectifying) {
  KILN_REQUIRE_DEVICE();
  // beta2 = 0.9: rho_t > 5 from step 6 on, so 7 steps take both branches.
  EXPECT_RULE_MATCHES(radam_step, (RadamOptions{0.01, 0.9, 0.9, 1e-8, 0, false, false}));
  EXPECT_RULE_MATCHES(radam_step, (RadamOptions{0.01, 0.9, 0.9, 1e-8, 0.01, true, false}));
  EXPECT_RULE_MATCHES(radam_step, (RadamOptions{0.01, 0.9, 0.9, 1e-8, 0.1, false, true}));
}

TEST(CudaOptim, AGroupLargerThanOneLaunchMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 700; ++i) sizes.push_back(1 + i % 7);
  EXPECT_RULE_MATCHES(adam_step, (AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.01, true, false, true}),
                      sizes, 3);
  EXPECT_RULE_MATCHES(sgd_step, (SgdOptions{0.1, 0.9, 0, 0, false, false}), sizes, 3);
}

TEST(CudaOptim, StepsRefuseBadOptionsBeforeALaunch) {
  // Host memory: the checks come before any launch, so no device is needed.
  std::vector<float> p(4), g(4), buf(4);
  float step = 0;
  std::vector<ParamSlot<float>> slots(1);
  slots[0] = {p.data(), g.data(), 4, {buf.data(), buf.data(), nullptr}, &step, nullptr, true};
  EXPECT_THROW(cuda::adam_step<float>("adam", slots, AdamOptions{0.01, 1.0, 0.999}), ValueError);
  EXPECT_THROW(cuda::sgd_step<float>("sgd", slots, SgdOptions{0.1, 0, 0, 0, true, false}),
               ValueError);
  slots[0].state[1] = nullptr;
  EXPECT_THROW(cuda::adadelta_step<float>("adadelta", slots, AdadeltaOptions{}), ValueError);
  EXPECT_THROW(cuda::nadam_step<float>("nadam", slots, NadamOptions{}), ValueError);
  EXPECT_EQ(step, 0.0f);  // nothing advanced
}

}  // namespace
}  // namespace kiln::cuda
