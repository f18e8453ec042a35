#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/optim.h"
#include "finite_diff.h"

namespace kiln {
namespace {

// Sizes that cover an empty tensor, tails shorter than a vector, and tensors
// longer than one parallel grain (so the flat range splits inside them).
const std::vector<int64_t> kSizes = {5, 0, 70001, 1, 33, 40000};

// One parameter group in T plus the same group in double for the reference.
template <typename T>
struct Group {
  std::vector<std::vector<T>> p, g, s0, s1, s2;
  std::vector<float> step, mu_product;
  std::vector<std::vector<double>> rp, rs0, rs1, rs2;

  explicit Group(double init_state = 0) {
    unsigned seed = 1;
    for (int64_t n : kSizes) {
      std::vector<double> v = testing::test_values(n, seed++, 1.0);
      p.emplace_back(v.begin(), v.end());
      rp.emplace_back(p.back().begin(), p.back().end());
      g.emplace_back(n);
      for (auto* s : {&s0, &s1, &s2}) s->emplace_back(n, T(init_state));
      for (auto* s : {&rs0, &rs1, &rs2}) s->emplace_back(n, double(T(init_state)));
      step.push_back(0.0f);
      mu_product.push_back(1.0f);
    }
  }

  // New gradients for step t, identical in both precisions.
  void next_grads(unsigned t) {
    for (size_t i = 0; i < kSizes.size(); ++i) {
      std::vector<double> v = testing::test_values(kSizes[i], 100 * t + unsigned(i), 0.5);
      g[i].assign(v.begin(), v.end());
    }
  }

  std::vector<ParamSlot<T>> slots(bool counts_steps) {
    std::vector<ParamSlot<T>> out;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      ParamSlot<T> s;
      s.param = p[i].data();
      s.grad = g[i].data();
      s.numel = kSizes[i];
      s.state = {s0[i].data(), s1[i].data(), s2[i].data()};
      if (counts_steps) s.step = &step[i];
      s.mu_product = &mu_product[i];
      out.push_back(s);
    }
    return out;
  }

  void expect_close(double rel) const {
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k)
        ASSERT_NEAR(p[i][k], rp[i][k], rel * (1 + std::abs(rp[i][k]))) << i << ", " << k;
  }
};

template <typename T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

template <typename T>
class OptimRules : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OptimRules, Precisions);

// The SGD reference: the first step sets the buffer to the gradient, undampened.
template <typename T>
void check_sgd(const SgdOptions& o) {
  Group<T> grp;
  for (unsigned t = 1; t <= 3; ++t) {
    grp.next_grads(t);
    auto slots = grp.slots(false);
    for (auto& s : slots) s.fresh = t == 1;
    sgd_step("sgd_step", slots, o);
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k) {
        double g = (o.maximize ? -1.0 : 1.0) * grp.g[i][k] + o.weight_decay * grp.rp[i][k];
        double& b = grp.rs0[i][k];
        b = t == 1 ? g : o.momentum * b + (1 - o.dampening) * g;
        grp.rp[i][k] -= o.lr * (o.nesterov ? g + o.momentum * b : b);
      }
  }
  grp.expect_close(tolerance<T>());
}

TYPED_TEST(OptimRules, SgdNesterovWeightDecayMaximize) {
  check_sgd<TypeParam>(SgdOptions{0.1, 0.9, 0.0, 0.01, true, true});
}

TYPED_TEST(OptimRules, SgdDampenedMomentumSkipsDampeningOnTheFirstStep) {
  check_sgd<TypeParam>(SgdOptions{0.05, 0.8, 0.3, 0.0, false, false});
}

TYPED_TEST(OptimRules, AdagradWithLrDecay) {
  using T = TypeParam;
  Group<T> grp(0.1);
  const AdagradOptions o{0.1, 0.05, 0.02, 1e-10, false};
  for (unsigned t = 1; t <= 3; ++t) {
    grp.next_grads(t);
    adagrad_step("adagrad_step", grp.slots(true), o);
    const double clr = o.lr / (1 + (t - 1) * o.lr_decay);
    for (size_t i = 0; i < kSizes.size(); ++i) {
      EXPECT_EQ(grp.step[i], float(t));
      for (int64_t k = 0; k < kSizes[i]; ++k) {
        const double g = grp.g[i][k] + o.weight_decay * grp.rp[i][k];
        double& s = grp.rs0[i][k];
        s += g * g;
        grp.rp[i][k] -= clr * g / (std::sqrt(s) + o.eps);
      }
    }
  }
  grp.expect_close(tolerance<T>());
}

TYPED_TEST(OptimRules, RmspropCenteredWithMomentum) {
  using T = TypeParam;
  Group<T> grp;
  const RmspropOptions o{0.01, 0.9, 1e-8, 0.01, 0.5, true, false};
  for (unsigned t = 1; t <= 3; ++t) {
    grp.next_grads(t);
    rmsprop_step("rmsprop_step", grp.slots(true), o);
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k) {
        const double g = grp.g[i][k] + o.weight_decay * grp.rp[i][k];
        double &v = grp.rs0[i][k], &a = grp.rs1[i][k], &b = grp.rs2[i][k];
        v = o.alpha * v + (1 - o.alpha) * g * g;
        a = a + (1 - o.alpha) * (g - a);
        b = o.momentum * b + g / (std::sqrt(v - a * a) + o.eps);
        grp.rp[i][k] -= o.lr * b;
      }
  }
  grp.expect_close(tolerance<T>());
}

TYPED_TEST(OptimRules, RmspropPlain) {
  using T = TypeParam;
  Group<T> grp;
  const RmspropOptions o{0.01, 0.99, 1e-8, 0.0, 0.0, false, true};
  for (unsigned t = 1; t <= 3; ++t) {
    grp.next_grads(t);
    auto slots = grp.slots(true);
    for (auto& s : slots) s.state[1] = s.state[2] = nullptr;  // unused buffers may be absent
    rmsprop_step("rmsprop_step", slots, o);
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k) {
        const double g = -double(grp.g[i][k]);
        double& v = grp.rs0[i][k];
        v = o.alpha * v + (1 - o.alpha) * g * g;
        grp.rp[i][k] -= o.lr * g / (std::sqrt(v) + o.eps);
      }
  }
  grp.expect_close(tolerance<T>());
}

template <typename T>
void check_adam(bool amsgrad, bool decoupled) {
  Group<T> grp;
  const AdamOptions o{0.01, 0.9, 0.999, 1e-8, 0.05, amsgrad, false, decoupled};
  for (unsigned t = 1; t <= 3; ++t) {
    grp.next_grads(t);
    adam_step("adam_step", grp.slots(true), o);
    const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k) {
        double g = grp.g[i][k];
        double& w = grp.rp[i][k];
        if (decoupled) w *= 1 - o.lr * o.weight_decay;
        else g += o.weight_decay * w;
        double &m = grp.rs0[i][k], &v = grp.rs1[i][k], &vmax = grp.rs2[i][k];
        m = o.beta1 * m + (1 - o.beta1) * g;
        v = o.beta2 * v + (1 - o.beta2) * g * g;
        vmax = std::max(vmax, v);
        w -= o.lr / bc1 * m / (std::sqrt(amsgrad ? vmax : v) / std::sqrt(bc2) + o.eps);
      }
  }
  grp.expect_close(tolerance<T>());
}

TYPED_TEST(OptimRules, AdamAndAdamW) {
  for (bool amsgrad : {false, true})
    for (bool decoupled : {false, true}) check_adam<TypeParam>(amsgrad, decoupled);
}

// Runs `steps` steps of a rule and of its double reference update(t, i, g, w, s0, s1),
// which sees the weight-decayed gradient's inputs raw: g is the gradient, w the weight.
template <typename T, typename Step, typename Ref>
void check_rule(unsigned steps, Step&& step, Ref&& update) {
  Group<T> grp;
  for (unsigned t = 1; t <= steps; ++t) {
    grp.next_grads(t);
    step(grp.slots(true));
    for (size_t i = 0; i < kSizes.size(); ++i)
      for (int64_t k = 0; k < kSizes[i]; ++k)
        update(t, i, double(grp.g[i][k]), grp.rp[i][k], grp.rs0[i][k], grp.rs1[i][k]);
  }
  grp.expect_close(tolerance<T>());
}

TYPED_TEST(OptimRules, Adadelta) {
  using T = TypeParam;
  const AdadeltaOptions o{0.5, 0.8, 1e-6, 0.05, false};
  check_rule<T>(3, [&](auto slots) { adadelta_step("adadelta_step", slots, o); },
                [&](unsigned, size_t, double g, double& w, double& v, double& u) {
                  g += o.weight_decay * w;
                  v = o.rho * v + (1 - o.rho) * g * g;
                  const double d = std::sqrt(u + o.eps) / std::sqrt(v + o.eps) * g;
                  u = o.rho * u + (1 - o.rho) * d * d;
                  w -= o.lr * d;
                });
}

TYPED_TEST(OptimRules, Adamax) {
  using T = TypeParam;
  const AdamaxOptions o{0.01, 0.9, 0.99, 1e-8, 0.05, false};
  check_rule<T>(3, [&](auto slots) { adamax_step("adamax_step", slots, o); },
                [&](unsigned t, size_t, double g, double& w, double& m, double& u) {
                  g += o.weight_decay * w;
                  m = o.beta1 * m + (1 - o.beta1) * g;
                  u = std::max(o.beta2 * u, std::abs(g) + o.eps);
                  w -= o.lr / (1 - std::pow(o.beta1, t)) * m / u;
                });
}

TYPED_TEST(OptimRules, NAdam) {
  using T = TypeParam;
  for (bool decoupled : {false, true}) {
    const NadamOptions o{0.01, 0.9, 0.999, 1e-8, 0.05, 4e-3, false, decoupled};
    auto mu_at = [&](double s) {
      return o.beta1 * (1 - 0.5 * std::pow(0.96, s * o.momentum_decay));
    };
    // The product of the mu's up to step t, kept in float32 as the kernel (and PyTorch) keeps it.
    auto product_at = [&](unsigned t) {
      float prod = 1.0f;
      for (unsigned s = 1; s <= t; ++s) prod = prod * float(mu_at(s));
      return double(prod);
    };
    check_rule<T>(3, [&](auto slots) { nadam_step("nadam_step", slots, o); },
                  [&](unsigned t, size_t, double g, double& w, double& m, double& v) {
                    const double mu = mu_at(t), mu_next = mu_at(t + 1), prod = product_at(t);
                    if (decoupled) w *= 1 - o.lr * o.weight_decay;
                    else g += o.weight_decay * w;
                    m = o.beta1 * m + (1 - o.beta1) * g;
                    v = o.beta2 * v + (1 - o.beta2) * g * g;
                    const double d = std::sqrt(v / (1 - std::pow(o.beta2, t))) + o.eps;
                    w -= o.lr * (1 - mu) / (1 - prod) * g / d;
                    w -= o.lr * mu_next / (1 - prod * mu_next) * m / d;
                  });
  }
}

TYPED_TEST(OptimRules, RAdamBeforeAndAfterRectification) {
  using T = TypeParam;
  for (bool decoupled : {false, true}) {
    const RadamOptions o{0.01, 0.9, 0.999, 1e-8, 0.05, false, decoupled};
    // rho_t passes 5 at step 6: eight steps cover both branches.
    check_rule<T>(8, [&](auto slots) { radam_step("radam_step", slots, o); },
                  [&](unsigned t, size_t, double g, double& w, double& m, double& v) {
                    if (decoupled) w *= 1 - o.lr * o.weight_decay;
                    else g += o.weight_decay * w;
                    m = o.beta1 * m + (1 - o.beta1) * g;
                    v = o.beta2 * v + (1 - o.beta2) * g * g;
                    const double bc2 = 1 - std::pow(o.beta2, t);
                    const double rho_inf = 2 / (1 - o.beta2) - 1;
                    const double rho = rho_inf - 2 * t * std::pow(o.beta2, t) / bc2;
                    double u = m / (1 - std::pow(o.beta1, t)) * o.lr;
                    if (rho > 5)
                      u *= std::sqrt(bc2) / (std::sqrt(v) + o.eps) *
                           std::sqrt((rho - 4) * (rho - 2) * rho_inf /
                                     ((rho_inf - 4) * (rho_inf - 2) * rho));
                    w -= u;
                  });
  }
}

TEST(Optim, ResultDoesNotDependOnThreadCount) {
  Group<float> one, two;
  const AdamOptions o{0.01, 0.9, 0.999, 1e-8, 0.0, true, false, false};
  one.next_grads(1);
  two.next_grads(1);
  const int threads = get_num_threads();
  set_num_threads(1);
  adam_step("adam_step", one.slots(true), o);
  set_num_threads(2);
  adam_step("adam_step", two.slots(true), o);
  set_num_threads(threads);
  EXPECT_EQ(one.p, two.p);
  EXPECT_EQ(one.s2, two.s2);
}

TEST(Optim, BadArgumentsThrowBeforeAnythingChanges) {
  Group<float> grp;
  grp.next_grads(1);
  auto slots = grp.slots(true);
  const std::vector<float> before = grp.p[0];
  EXPECT_THROW(adam_step("adam_step", slots, AdamOptions{std::nan("")}), ValueError);
  EXPECT_THROW(adam_step("adam_step", slots, AdamOptions{0.1, 1.0}), ValueError);
  EXPECT_THROW(adam_step("adam_step", slots, AdamOptions{0.1, 0.9, -0.1}), ValueError);
  EXPECT_THROW(adagrad_step("adagrad_step", slots, AdagradOptions{0.1, -1.0}), ValueError);
  EXPECT_THROW(rmsprop_step("rmsprop_step", slots, RmspropOptions{0.1, -0.5}), ValueError);
  EXPECT_THROW(sgd_step("sgd_step", slots, SgdOptions{0.1, 0.9, 0.1, 0.0, true}), ValueError);
  EXPECT_THROW(sgd_step("sgd_step", slots, SgdOptions{0.1, 0.0, 0.0, 0.0, true}), ValueError);
  auto no_buffer = slots;
  no_buffer[2].state[2] = nullptr;
  try {
    adam_step("adam_step", no_buffer, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.0, true});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("adam_step: slot 2 has no max_exp_avg_sq"),
              std::string::npos)
        << e.what();
  }
  auto no_step = slots;
  no_step[1].step = nullptr;
  EXPECT_THROW(rmsprop_step("rmsprop_step", no_step, RmspropOptions{}), ValueError);
  auto negative = slots;
  negative[0].numel = -1;
  EXPECT_THROW(adagrad_step("adagrad_step", negative, AdagradOptions{}), ValueError);
  EXPECT_EQ(grp.p[0], before);
  for (float s : grp.step) EXPECT_EQ(s, 0.0f);
}

TEST(OptimClip, NormsMatchTheDefinition) {
  std::vector<std::vector<double>> data = {testing::test_values(70001, 3),
                                           testing::test_values(7, 4), {}, {0.0, -2.0}};
  std::vector<Span<const double>> spans;
  for (const auto& d : data) spans.push_back({d.data(), int64_t(d.size())});
  const double inf = std::numeric_limits<double>::infinity();
  for (double q : {2.0, 1.0, 3.0, 0.5, 0.0, inf, -inf}) {
    const std::vector<double> norms = tensor_norms(spans, q);
    for (size_t i = 0; i < data.size(); ++i) {
      long double acc = q == -inf ? inf : 0;
      for (double x : data[i]) {
        const double a = std::abs(x);
        if (q == inf) acc = std::max<long double>(acc, a);
        else if (q == -inf) acc = std::min<long double>(acc, a);
        else if (q == 0) acc += x != 0;
        else acc += std::pow(a, q);
      }
      const double expected =
          (q == 0 || std::isinf(q)) ? double(acc) : std::pow(double(acc), 1 / q);
      if (std::isinf(expected)) EXPECT_EQ(norms[i], expected);  // min over an empty tensor
      else EXPECT_NEAR(norms[i], expected, 1e-12 * (1 + std::abs(expected))) << "q=" << q;
    }
  }
  EXPECT_DOUBLE_EQ(vector_norm({3.0, -4.0}, 2.0), 5.0);
  EXPECT_DOUBLE_EQ(vector_norm({3.0, -4.0}, inf), 4.0);
  EXPECT_DOUBLE_EQ(vector_norm({3.0, -4.0}, -inf), 3.0);
  EXPECT_DOUBLE_EQ(vector_norm({3.0, 0.0, 1.0}, 0.0), 2.0);
  EXPECT_TRUE(std::isnan(vector_norm({1.0, std::nan("")}, inf)));
  EXPECT_THROW(vector_norm({1.0}, std::nan("")), ValueError);
}

TEST(OptimClip, ScaleAndClampInPlace) {
  std::vector<float> a = {1.0f, -3.0f, 0.5f, std::nanf("")}, b(50000, 2.0f);
  std::vector<Span<float>> spans = {{a.data(), 4}, {b.data(), 50000}};
  clamp_(spans, -1.0, 1.0);
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], -1.0f);
  EXPECT_EQ(a[2], 0.5f);
  EXPECT_TRUE(std::isnan(a[3]));
  EXPECT_EQ(b[49999], 1.0f);
  scale_(spans, 0.25);
  EXPECT_EQ(a[1], -0.25f);
  EXPECT_EQ(b[123], 0.25f);
  EXPECT_THROW(clamp_(spans, std::nan(""), 1.0), ValueError);
}

}  // namespace
}  // namespace kiln
