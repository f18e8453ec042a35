#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/activation.h"
#include "cpu/vmath.h"
#include "tests/finite_diff.h"

namespace kiln {
namespace {

using testing::numeric_vjp;
using testing::test_values;

// An independent double reference for every op of the list (the switch has no
// default, so an op added without one is a -Wswitch warning).
double reference(Pointwise op, double a, double x) {
  switch (op) {
    case Pointwise::ReLU: return x > 0 ? x : 0;
    case Pointwise::LeakyReLU: return x > 0 ? x : a * x;
    case Pointwise::ELU: return x > 0 ? x : a * (std::exp(x) - 1);
    case Pointwise::SELU:
      return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (std::exp(x) - 1));
    case Pointwise::GELU: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Pointwise::GELUTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Pointwise::Sigmoid: return 1 / (1 + std::exp(-x));
    case Pointwise::Tanh: return std::tanh(x);
    case Pointwise::Hardswish: return x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case Pointwise::SiLU: return x / (1 + std::exp(-x));
    case Pointwise::Hardsigmoid: return std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case Pointwise::Mish: return x * std::tanh(std::log(1 + std::exp(x)));
    case Pointwise::LogSigmoid: return -std::log(1 + std::exp(-x));
  }
  return NAN;
}

bool reads_output(Pointwise op) { return pointwise_info(op).saved == Saved::Output; }

TEST(Pointwise, ForwardMatchesReferenceAndBackwardMatchesFiniteDifferences) {
  set_num_threads(2);
  const size_t n = 100003;  // above the threading grain
  const std::vector<double> x = test_values(n, 1, 4.0), g = test_values(n, 2);
  const double a = 0.3;
  for (Pointwise op : kPointwiseOps) {
    const char* name = pointwise_info(op).name;
    std::vector<double> y(n), dx(n);
    pointwise_forward<double>(op, a, x.data(), y.data(), n);
    for (size_t i = 0; i < n; i += 97) EXPECT_NEAR(y[i], reference(op, a, x[i]), 1e-12) << name;
    std::vector<float> xf(x.begin(), x.end()), yf(n);
    pointwise_forward<float>(op, float(a), xf.data(), yf.data(), n);
    for (size_t i = 0; i < n; i += 97)
      EXPECT_NEAR(yf[i], y[i], 2e-6 * (1 + std::abs(y[i]))) << name;

    pointwise_backward<double>(op, a, reads_output(op) ? y.data() : x.data(), g.data(), dx.data(),
                               n);
    for (size_t i = 0; i < n; i += 997) {
      const double h = 1e-6;
      const double num = (reference(op, a, x[i] + h) - reference(op, a, x[i] - h)) / (2 * h);
      EXPECT_NEAR(dx[i], g[i] * num, 1e-6) << name << " at x=" << x[i];
    }
  }
}

// Values where PyTorch 2.13 decides by convention: the ends of hardswish's ramp,
// infinities and NaN.
TEST(Pointwise, HardswishAndSiluEdgesMatchPyTorch) {
  const double inf = INFINITY, nan = NAN;
  const std::vector<double> x = {-3, 3, -inf, inf, nan, -100, 0};
  auto run = [&](Pointwise op) {
    std::vector<double> y(x.size()), dx(x.size()), ones(x.size(), 1.0);
    pointwise_forward<double>(op, 0, x.data(), y.data(), x.size());
    pointwise_backward<double>(op, 0, x.data(), ones.data(), dx.data(), x.size());
    return std::pair(y, dx);
  };
  const auto [hy, hdx] = run(Pointwise::Hardswish);
  EXPECT_EQ(hy[0], 0.0);
  EXPECT_TRUE(std::signbit(hy[0]));  // -3 * 0 / 6
  EXPECT_EQ(hy[1], 3.0);
  EXPECT_TRUE(std::isnan(hy[2]));  // -inf * 0
  EXPECT_EQ(hy[3], inf);
  EXPECT_TRUE(std::isnan(hy[4]));
  EXPECT_EQ(hdx[0], 0.0);  // the gradient is 0 at -3 and 1 at 3
  EXPECT_EQ(hdx[1], 1.0);
  EXPECT_EQ(hdx[2], 0.0);
  EXPECT_EQ(hdx[3], 1.0);
  EXPECT_TRUE(std::isnan(hdx[4]));
  EXPECT_EQ(hdx[6], 0.5);

  const auto [sy, sdx] = run(Pointwise::SiLU);
  EXPECT_TRUE(std::isnan(sy[2]));  // -inf / inf
  EXPECT_EQ(sy[3], inf);
  EXPECT_TRUE(std::isnan(sy[4]));
  EXPECT_TRUE(std::isnan(sdx[2]) && std::isnan(sdx[3]) && std::isnan(sdx[4]));
  EXPECT_EQ(sdx[6], 0.5);
  EXPECT_NEAR(sy[5], -100 / (1 + std::exp(100.0)), 1e-50);
}

// Ops share a name only as the values of one string parameter, and then agree on
// everything else; every other name is unique.
TEST(Pointwise, ListIsConsistent) {
  for (Pointwise a : kPointwiseOps)
    for (Pointwise b : kPointwiseOps) {
      const PointwiseInfo &p = pointwise_info(a), &q = pointwise_info(b);
      if (a == b || std::string(p.name) != q.name) continue;
      ASSERT_TRUE(p.variant && q.variant) << p.name;
      EXPECT_NE(std::string(p.variant), q.variant) << p.name;
      EXPECT_EQ(p.saved, q.saved) << p.name;
      EXPECT_EQ(std::string(p.param), q.param) << p.name;
    }
}

// The vectorizable float functions against glibc's, in double, over their range.
TEST(VMath, FloatFunctionsMatchLibm) {
  double worst_exp = 0, worst_expm1 = 0, worst_tanh = 0, worst_erf = 0;
  for (float x = -110.f; x < 90.f; x += std::max(std::abs(x) * 1e-4f, 1e-6f)) {
    const double e = std::exp(double(x));
    if (e > 1e-37 && e < 3e38) worst_exp = std::max(worst_exp, std::abs(vmath::exp(x) / e - 1));
    const double m = std::expm1(double(x));
    if (m > -1 && m < 3e38) worst_expm1 = std::max(worst_expm1, std::abs(vmath::expm1(x) / m - 1));
    const double t = std::tanh(double(x));
    worst_tanh = std::max(worst_tanh, std::abs(vmath::tanh(x) - t) / std::max(std::abs(t), 1e-30));
    worst_erf = std::max(worst_erf, std::abs(vmath::erf(x) - std::erf(double(x))));
  }
  EXPECT_LT(worst_exp, 2e-7);
  EXPECT_LT(worst_expm1, 3e-7);
  EXPECT_LT(worst_tanh, 5e-7);
  EXPECT_LT(worst_erf, 1e-6);
  EXPECT_TRUE(std::isinf(vmath::exp(89.f)));
  EXPECT_EQ(vmath::exp(-200.f), 0.f);
  EXPECT_EQ(vmath::tanh(-30.f), -1.f);
  EXPECT_EQ(vmath::expm1(-100.f), -1.f);
  EXPECT_TRUE(std::isnan(vmath::exp(NAN)) && std::isnan(vmath::tanh(NAN)) &&
              std::isnan(vmath::erf(NAN)) && std::isnan(vmath::expm1(NAN)));
}

TEST(Pointwise, RejectsNegativeCount) {
  float v = 0;
  EXPECT_THROW(pointwise_forward<float>(Pointwise::ReLU, 0, &v, &v, -1), ValueError);
  EXPECT_THROW(pointwise_backward<float>(Pointwise::Tanh, 0, &v, &v, &v, -2), ValueError);
}

// Naive softmax over (outer, dim, inner), one column at a time.
std::vector<double> naive_softmax(const std::vector<double>& x, int64_t outer, int64_t dim,
                                  int64_t inner, bool log) {
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double m = -INFINITY, s = 0;
      for (int64_t d = 0; d < dim; ++d) m = std::max(m, x[(o * dim + d) * inner + i]);
      for (int64_t d = 0; d < dim; ++d) s += std::exp(x[(o * dim + d) * inner + i] - m);
      for (int64_t d = 0; d < dim; ++d) {
        const double v = x[(o * dim + d) * inner + i] - m;
        y[(o * dim + d) * inner + i] = log ? v - std::log(s) : std::exp(v) / s;
      }
    }
  return y;
}

TEST(Softmax, MatchesNaiveAndFiniteDifferences) {
  set_num_threads(2);
  struct Case {
    int64_t outer, dim, inner;
  };
  for (Case c : {Case{3, 7, 1}, Case{2, 5, 300}, Case{1, 1, 4}, Case{4, 3, 2}, Case{300, 40, 3}})
    for (bool log : {false, true}) {
      const size_t n = c.outer * c.dim * c.inner;
      const std::vector<double> x = test_values(n, 3, 4.0), g = test_values(n, 4);
      std::vector<double> y(n), dx(n);
      softmax_forward<double>(x.data(), y.data(), c.outer, c.dim, c.inner, log);
      const auto want = naive_softmax(x, c.outer, c.dim, c.inner, log);
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], want[i], 1e-12);
      softmax_backward<double>(y.data(), g.data(), dx.data(), c.outer, c.dim, c.inner, log);
      if (n > 2000) continue;  // finite differences are quadratic in n
      const auto num = numeric_vjp(
          [&](const auto& v) { return naive_softmax(v, c.outer, c.dim, c.inner, log); }, x, g);
      for (size_t i = 0; i < n; ++i) EXPECT_NEAR(dx[i], num[i], 1e-6);
    }
}

TEST(Softmax, LargeLogitsStayFinite) {
  const float x[3] = {1e4f, -1e4f, 0.f};
  float y[3], ly[3];
  softmax_forward<float>(x, y, 1, 3, 1, false);
  softmax_forward<float>(x, ly, 1, 3, 1, true);
  EXPECT_FLOAT_EQ(y[0], 1.f);
  EXPECT_FLOAT_EQ(ly[1], -2e4f);
  EXPECT_FLOAT_EQ(ly[0], 0.f);
}

TEST(Softmax, RejectsNegativeSizes) {
  float v = 0;
  EXPECT_THROW(softmax_forward<float>(&v, &v, 1, -1, 1, false), ValueError);
  EXPECT_THROW(softmax_backward<float>(&v, &v, &v, -1, 1, 1, true), ValueError);
}

TEST(PReLU, MatchesNaiveAndFiniteDifferences) {
  for (int64_t wn : {int64_t(1), int64_t(3)}) {
    const int64_t outer = 2, C = 3, inner = 5, n = outer * C * inner;
    const std::vector<double> x = test_values(n, 5), w = test_values(wn, 6, 0.5),
                              g = test_values(n, 7);
    auto forward = [&](const std::vector<double>& xv, const std::vector<double>& wv) {
      std::vector<double> y(n);
      prelu_forward<double>(xv.data(), wv.data(), y.data(), outer, C, inner, wn);
      return y;
    };
    const auto y = forward(x, w);
    for (int64_t i = 0; i < n; ++i) {
      const double a = w[wn == 1 ? 0 : (i / inner) % C];
      EXPECT_DOUBLE_EQ(y[i], x[i] > 0 ? x[i] : a * x[i]);
    }
    std::vector<double> dx(n), dw(wn);
    prelu_backward<double>(x.data(), w.data(), g.data(), dx.data(), dw.data(), outer, C, inner,
                           wn);
    const auto nx = numeric_vjp([&](const auto& v) { return forward(v, w); }, x, g);
    const auto nw = numeric_vjp([&](const auto& v) { return forward(x, v); }, w, g);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(dx[i], nx[i], 1e-6);
    for (int64_t i = 0; i < wn; ++i) EXPECT_NEAR(dw[i], nw[i], 1e-6);
  }
}

TEST(PReLU, RejectsWeightOfWrongSize) {
  std::vector<float> x(12), w(2), y(12);
  EXPECT_THROW(prelu_forward<float>(x.data(), w.data(), y.data(), 2, 3, 2, 2), ValueError);
  EXPECT_THROW(prelu_backward<float>(x.data(), w.data(), x.data(), y.data(), w.data(), 2, 3, 2, 2),
               ValueError);
}

}  // namespace
}  // namespace kiln
