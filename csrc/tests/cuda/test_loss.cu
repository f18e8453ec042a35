// CUDA losses against the CPU kernels on the same random inputs: every loss of
// cpu/loss.h, forward and backward, each reduction, with and without weights, label
// smoothing and ignored positions; the CPU's errors for bad class indices and
// probabilities out of [0, 1], eagerly and (checked on the device) inside a CUDA graph.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compare.h"
#include "cpu/loss.h"
#include "cuda/loss.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

constexpr Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

template <typename T>
T* ptr_or_null(DeviceBuffer<T>& b, bool present) {
  return present ? b.get() : nullptr;
}

std::vector<int64_t> class_targets(size_t n, int64_t C, uint32_t seed, bool with_ignored) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> pick(0, C - 1);
  std::vector<int64_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = with_ignored && i % 5 == 2 ? -100 : pick(gen);
  return t;
}

template <typename T>
void expect_class_losses_match(ClassDims d, bool weighted, T eps, Reduction r) {
  const size_t n = d.N * d.S, nx = n * d.C, terms = r == Reduction::None ? n : 1;
  const std::vector<T> x = random_values<T>(nx, 1, -4, 4), w = random_values<T>(d.C, 2, 0.2, 2);
  const std::vector<T> g = random_values<T>(terms, 3, 0.5, 2);
  const std::vector<int64_t> t = class_targets(n, d.C, 4, true);
  const ClassTargets<T> ht{t.data(), weighted ? w.data() : nullptr, -100, eps};

  std::vector<T> logp(nx), loss(terms), dx(nx), nll_loss(terms), dlogp(nx);
  const T z = kiln::cross_entropy_forward(x.data(), d, ht, r, logp.data(), loss.data());
  kiln::cross_entropy_backward(g.data(), logp.data(), d, ht, r, z, dx.data());
  const T z_nll = kiln::nll_loss_forward(logp.data(), d, ht, r, nll_loss.data());
  kiln::nll_loss_backward(g.data(), d, ht, r, z_nll, dlogp.data());

  DeviceBuffer<T> d_x(x), d_w(w), d_g(g), d_logp(nx), d_loss(terms), d_dx(nx), d_nll(terms),
      d_dlogp(nx);
  DeviceBuffer<int64_t> d_t(t);
  const ClassTargets<T> dt{d_t.get(), ptr_or_null(d_w, weighted), -100, eps};
  const T z_gpu = cuda::cross_entropy_forward(d_x.get(), d, dt, r, d_logp.get(), d_loss.get());
  cuda::cross_entropy_backward(d_g.get(), d_logp.get(), d, dt, r, z_gpu, d_dx.get());
  expect_close(std::vector<T>{z_gpu}, std::vector<T>{z}, "cross_entropy total_weight");
  expect_close(d_logp.host(), logp, "cross_entropy log_probs");
  expect_close(d_loss.host(), loss, "cross_entropy loss");
  expect_close(d_dx.host(), dx, "cross_entropy grad_input");
  // nll_loss on the CPU's log-probabilities.
  DeviceBuffer<T> d_cpu_logp(logp);
  const T z_nll_gpu = cuda::nll_loss_forward(d_cpu_logp.get(), d, dt, r, d_nll.get());
  cuda::nll_loss_backward(d_g.get(), d, dt, r, z_nll_gpu, d_dlogp.get());
  expect_close(std::vector<T>{z_nll_gpu}, std::vector<T>{z_nll}, "nll_loss total_weight");
  expect_close(d_nll.host(), nll_loss, "nll_loss loss");
  expect_close(d_dlogp.host(), dlogp, "nll_loss grad_input");
}

TEST(CudaLoss, CrossEntropyAndNllMatchTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Reduction r : kReductions) {
    for (bool weighted : {false, true}) {
      expect_class_losses_match<float>({7, 5, 3}, weighted, 0.0f, r);
      expect_class_losses_match<float>({33, 11, 1}, weighted, 0.2f, r);
      expect_class_losses_match<double>({5, 4, 7}, weighted, 0.1, r);
    }
  }
}

template <typename T>
void expect_soft_cross_entropy_matches(ClassDims d, bool weighted, T eps, Reduction r) {
  const size_t n = d.N * d.S, nx = n * d.C, terms = r == Reduction::None ? n : 1;
  const std::vector<T> x = random_values<T>(nx, 5, -4, 4), p = random_values<T>(nx, 6, 0, 1);
  const std::vector<T> w = random_values<T>(d.C, 7, 0.2, 2), g = random_values<T>(terms, 8, 0.5, 2);
  const T* hw = weighted ? w.data() : nullptr;
  std::vector<T> logp(nx), loss(terms), dx(nx), dp(nx);
  kiln::soft_cross_entropy_forward(x.data(), p.data(), hw, d, eps, r, logp.data(), loss.data());
  kiln::soft_cross_entropy_backward(g.data(), logp.data(), p.data(), hw, d, eps, r, dx.data(),
                                    dp.data());

  DeviceBuffer<T> d_x(x), d_p(p), d_w(w), d_g(g), d_logp(nx), d_loss(terms), d_dx(nx), d_dp(nx);
  cuda::soft_cross_entropy_forward(d_x.get(), d_p.get(), ptr_or_null(d_w, weighted), d, eps, r,
                             d_logp.get(), d_loss.get());
  cuda::soft_cross_entropy_backward(d_g.get(), d_logp.get(), d_p.get(), ptr_or_null(d_w, weighted),
                                    d, eps, r, d_dx.get(), d_dp.get());
  expect_close(d_loss.host(), loss, "soft cross_entropy loss");
  expect_close(d_dx.host(), dx, "soft cross_entropy grad_input");
  expect_close(d_dp.host(), dp, "soft cross_entropy grad_target");
}

TEST(CudaLoss, SoftCrossEntropyMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Reduction r : kReductions) {
    expect_soft_cross_entropy_matches<float>({6, 5, 3}, true, 0.1f, r);
    expect_soft_cross_entropy_matches<double>({9, 7, 1}, false, 0.0, r);
  }
}

template <typename T>
void expect_regression_matches(Regression kind, bool weighted, Reduction r, T param) {
  const size_t n = 1001, terms = r == Reduction::None ? n : 1;
  const std::vector<T> x = random_values<T>(n, 9), y = random_values<T>(n, 10);
  const std::vector<T> w = random_values<T>(n, 11, 0.1, 2), g = random_values<T>(terms, 12, 0.5, 2);
  const T* hw = weighted ? w.data() : nullptr;
  std::vector<T> loss(terms), dx(n), dy(n), dw(n);
  kiln::regression_loss_forward(kind, x.data(), y.data(), hw, n, r, loss.data(), param);
  kiln::regression_loss_backward(kind, g.data(), x.data(), y.data(), hw, n, r, dx.data(),
                                 dy.data(), weighted ? dw.data() : nullptr, param);

  DeviceBuffer<T> d_x(x), d_y(y), d_w(w), d_g(g), d_loss(terms), d_dx(n), d_dy(n), d_dw(n);
  cuda::regression_loss_forward(kind, d_x.get(), d_y.get(), ptr_or_null(d_w, weighted), n, r,
                          d_loss.get(), param);
  cuda::regression_loss_backward(kind, d_g.get(), d_x.get(), d_y.get(), ptr_or_null(d_w, weighted),
                                 n, r, d_dx.get(), d_dy.get(), ptr_or_null(d_dw, weighted), param);
  const char* name = regression_name(kind);
  expect_close(d_loss.host(), loss, name);
  expect_close(d_dx.host(), dx, name);
  expect_close(d_dy.host(), dy, name);
  if (weighted) expect_close(d_dw.host(), dw, name);
}

TEST(CudaLoss, RegressionLossesMatchTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Regression kind : {Regression::MSE, Regression::L1, Regression::SmoothL1, Regression::Huber})
    for (Reduction r : kReductions)
      for (bool weighted : {false, true}) {
        expect_regression_matches<float>(kind, weighted, r, 0.7f);
        expect_regression_matches<double>(kind, weighted, r, 1.3);
      }
}

template <typename T>
void expect_bce_matches(bool weighted, Reduction r) {
  const size_t n = 777, terms = r == Reduction::None ? n : 1;
  const std::vector<T> logits = random_values<T>(n, 13, -8, 8), y = random_values<T>(n, 14, 0, 1);
  std::vector<T> probs = random_values<T>(n, 15, 0, 1);
  probs[0] = T(0);
  probs[1] = T(1);
  const std::vector<T> w = random_values<T>(n, 16, 0.1, 2), pw = random_values<T>(n, 17, 0.5, 3);
  const std::vector<T> g = random_values<T>(terms, 18, 0.5, 2);
  const T* hw = weighted ? w.data() : nullptr;
  const T* hpw = weighted ? pw.data() : nullptr;
  std::vector<T> l1(terms), dx1(n), dy1(n), l2(terms), dx2(n), dy2(n);
  kiln::bce_with_logits_forward(logits.data(), y.data(), hw, hpw, n, r, l1.data());
  kiln::bce_with_logits_backward(g.data(), logits.data(), y.data(), hw, hpw, n, r, dx1.data(),
                                 dy1.data());
  kiln::bce_forward(probs.data(), y.data(), hw, n, r, l2.data());
  kiln::bce_backward(g.data(), probs.data(), y.data(), hw, n, r, dx2.data(), dy2.data());

  DeviceBuffer<T> d_logits(logits), d_probs(probs), d_y(y), d_w(w), d_pw(pw), d_g(g);
  DeviceBuffer<T> d_l1(terms), d_dx1(n), d_dy1(n), d_l2(terms), d_dx2(n), d_dy2(n);
  cuda::bce_with_logits_forward(d_logits.get(), d_y.get(), ptr_or_null(d_w, weighted),
                          ptr_or_null(d_pw, weighted), n, r, d_l1.get());
  cuda::bce_with_logits_backward(d_g.get(), d_logits.get(), d_y.get(), ptr_or_null(d_w, weighted),
                           ptr_or_null(d_pw, weighted), n, r, d_dx1.get(), d_dy1.get());
  cuda::bce_forward(d_probs.get(), d_y.get(), ptr_or_null(d_w, weighted), n, r, d_l2.get());
  cuda::bce_backward(d_g.get(), d_probs.get(), d_y.get(), ptr_or_null(d_w, weighted), n, r,
                     d_dx2.get(), d_dy2.get());
  expect_close(d_l1.host(), l1, "bce_with_logits loss");
  expect_close(d_dx1.host(), dx1, "bce_with_logits grad_input");
  expect_close(d_dy1.host(), dy1, "bce_with_logits grad_target");
  expect_close(d_l2.host(), l2, "bce loss");
  expect_close(d_dx2.host(), dx2, "bce grad_input");
  expect_close(d_dy2.host(), dy2, "bce grad_target");
}

TEST(CudaLoss, BinaryCrossEntropyMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Reduction r : kReductions)
    for (bool weighted : {false, true}) {
      expect_bce_matches<float>(weighted, r);
      expect_bce_matches<double>(weighted, r);
    }
}

template <typename T>
void expect_multi_margin_matches(int p, bool weighted, Reduction r) {
  const int64_t N = 9, C = 6;
  const size_t terms = r == Reduction::None ? N : 1;
  const std::vector<T> x = random_values<T>(N * C, 19), w = random_values<T>(C, 20, 0.2, 2);
  const std::vector<T> g = random_values<T>(terms, 21, 0.5, 2);
  const std::vector<int64_t> t = class_targets(N, C, 22, false);
  const T* hw = weighted ? w.data() : nullptr;
  std::vector<T> loss(terms), dx(N * C);
  kiln::multi_margin_forward(x.data(), t.data(), hw, N, C, p, T(0.8), r, loss.data());
  kiln::multi_margin_backward(g.data(), x.data(), t.data(), hw, N, C, p, T(0.8), r, dx.data());

  DeviceBuffer<T> d_x(x), d_w(w), d_g(g), d_loss(terms), d_dx(N * C);
  DeviceBuffer<int64_t> d_t(t);
  cuda::multi_margin_forward(d_x.get(), d_t.get(), ptr_or_null(d_w, weighted), N, C, p, T(0.8), r,
                       d_loss.get());
  cuda::multi_margin_backward(d_g.get(), d_x.get(), d_t.get(), ptr_or_null(d_w, weighted), N, C, p,
                        T(0.8), r, d_dx.get());
  expect_close(d_loss.host(), loss, "multi_margin loss");
  expect_close(d_dx.host(), dx, "multi_margin grad_input");
}

TEST(CudaLoss, MultiMarginMatchesTheCpu) {
  KILN_REQUIRE_DEVICE();
  for (Reduction r : kReductions)
    for (int p : {1, 2}) {
      expect_multi_margin_matches<float>(p, true, r);
      expect_multi_margin_matches<double>(p, false, r);
    }
}

TEST(CudaLoss, BadClassIndexAndProbabilityThrowTheCpuErrors) {
  KILN_REQUIRE_DEVICE();
  const ClassDims d{4, 3, 1};
  DeviceBuffer<float> x(std::vector<float>(12, 0.5f)), loss(1), logp(12);
  DeviceBuffer<int64_t> t(std::vector<int64_t>{0, 2, 3, -100});
  const ClassTargets<float> targets{t.get(), nullptr, -100, 0};
  EXPECT_THROW(
      cuda::cross_entropy_forward(x.get(), d, targets, Reduction::Mean, logp.get(), loss.get()),
               ValueError);
  EXPECT_THROW(cuda::multi_margin_forward(x.get(), t.get(), static_cast<const float*>(nullptr), 4,
                                          3, 1, 1.0f, Reduction::Mean, loss.get()),
               ValueError);
  DeviceBuffer<float> probs(std::vector<float>{0.5f, 1.5f}), y(std::vector<float>{1, 0});
  EXPECT_THROW(cuda::bce_forward(probs.get(), y.get(), static_cast<const float*>(nullptr), 2,
                           Reduction::Sum, loss.get()),
               ValueError);
}

// Inside a CUDA graph the class-target and probability checks run on the device and
// are raised after a replay with the eager text, and the backward of the mean finds
// its divisor Z (ignored positions, class weights) on the device.
TEST(CudaLoss, CapturedLossesCheckOnTheDeviceAndKeepTheMeanDivisor) {
  KILN_REQUIRE_DEVICE();
  const ClassDims d{7, 4, 1};
  const std::vector<float> x = random_values<float>(28, 11, -3, 3);
  const std::vector<float> w = random_values<float>(4, 12, 0.5, 2);
  std::vector<int64_t> t = class_targets(7, 4, 13, true);
  DeviceBuffer<float> d_x(x), d_w(w), g(std::vector<float>{1.5f}), logp(28), loss(1), dx(28);
  DeviceBuffer<float> eager_logp(28), eager_loss(1), eager_dx(28);
  DeviceBuffer<float> probs(std::vector<float>{0.25f, 0.5f, 0.75f}), y(std::vector<float>(3, 1));
  DeviceBuffer<float> bce_loss(1);
  DeviceBuffer<int64_t> d_t(t);
  const ClassTargets<float> targets{d_t.get(), d_w.get(), -100, 0.1f};
  const float z = cuda::cross_entropy_forward(d_x.get(), d, targets, Reduction::Mean,
                                              eager_logp.get(), eager_loss.get());
  cuda::cross_entropy_backward(g.get(), eager_logp.get(), d, targets, Reduction::Mean, z,
                               eager_dx.get());
  synchronize(0);

  cudaStream_t s = stream(0);
  begin_capture_pool(0, 4242);
  KILN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  EXPECT_TRUE(capturing(0));
  const float z_captured = cuda::cross_entropy_forward(d_x.get(), d, targets, Reduction::Mean,
                                                       logp.get(), loss.get());
  cuda::cross_entropy_backward(g.get(), logp.get(), d, targets, Reduction::Mean, z_captured,
                               dx.get());
  cuda::bce_forward(probs.get(), y.get(), static_cast<const float*>(nullptr), 3, Reduction::Sum,
                    bce_loss.get());
  cudaGraph_t graph = nullptr;
  KILN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  end_capture_pool(0);
  EXPECT_FALSE(capturing(0));
  const std::vector<DeferredCheck> checks = take_deferred_checks(0);
  EXPECT_EQ(checks.size(), 2u);  // cross_entropy's targets, bce's probabilities
  EXPECT_TRUE(take_deferred_checks(0).empty());
  cudaGraphExec_t exec = nullptr;
  KILN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));

  KILN_CUDA_CHECK(cudaGraphLaunch(exec, s));
  EXPECT_NO_THROW(run_deferred_checks(0, checks));
  EXPECT_EQ(loss.host(), eager_loss.host());
  // Z found again on the device (in double; the eager backward gets it rounded to T)
  expect_close(dx.host(), eager_dx.host(), "captured cross_entropy grad_input");

  t[5] = 9;  // a target out of range: the eager error, after the replay
  KILN_CUDA_CHECK(cudaMemcpyAsync(d_t.get(), t.data(), t.size() * sizeof(int64_t),
                                  cudaMemcpyHostToDevice, s));
  std::string eager_error, captured_error;
  try {
    cuda::cross_entropy_forward(d_x.get(), d, targets, Reduction::Mean, eager_logp.get(),
                                eager_loss.get());
  } catch (const ValueError& e) {
    eager_error = e.what();
  }
  KILN_CUDA_CHECK(cudaGraphLaunch(exec, s));
  try {
    run_deferred_checks(0, checks);
  } catch (const ValueError& e) {
    captured_error = e.what();
  }
  EXPECT_FALSE(eager_error.empty());
  EXPECT_EQ(captured_error, eager_error);

  KILN_CUDA_CHECK(cudaGraphExecDestroy(exec));
  KILN_CUDA_CHECK(cudaGraphDestroy(graph));
  release_capture_pool(0, 4242);
}

}  // namespace
}  // namespace kiln::cuda
