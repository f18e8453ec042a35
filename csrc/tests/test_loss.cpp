#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/loss.h"
#include "tests/finite_diff.h"

namespace kiln {
namespace {

using testing::numeric_vjp;
using testing::test_values;

const Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

size_t loss_size(Reduction r, int64_t n) { return r == Reduction::None ? n : 1; }

// Cross entropy with class indices, straight from the definition (double).
std::vector<double> naive_cross_entropy(const std::vector<double>& x, ClassDims d,
                                        const std::vector<int64_t>& t,
                                        const std::vector<double>& w, int64_t ignore, double eps,
                                        Reduction r) {
  std::vector<double> l(d.N * d.S);
  double total = 0, z = 0;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t s = 0; s < d.S; ++s) {
      const int64_t i = n * d.S + s, c = t[i];
      if (c == ignore) continue;
      double m = -INFINITY, se = 0;
      for (int64_t k = 0; k < d.C; ++k) m = std::max(m, x[(n * d.C + k) * d.S + s]);
      for (int64_t k = 0; k < d.C; ++k) se += std::exp(x[(n * d.C + k) * d.S + s] - m);
      auto logp = [&](int64_t k) { return x[(n * d.C + k) * d.S + s] - m - std::log(se); };
      double smooth = 0;
      for (int64_t k = 0; k < d.C; ++k) smooth += w[k] * logp(k);
      l[i] = -(1 - eps) * w[c] * logp(c) - eps / d.C * smooth;
      total += l[i];
      z += w[c];
    }
  if (r == Reduction::None) return l;
  return {r == Reduction::Mean ? total / z : total};
}

TEST(CrossEntropy, MatchesNaiveAndFiniteDifferences) {
  set_num_threads(2);
  const ClassDims d{3, 4, 5};
  const int64_t n = d.N * d.C * d.S;
  const std::vector<double> x = test_values(n, 1, 3.0), w = {0.5, 1.0, 2.0, 1.5};
  std::vector<int64_t> t(d.N * d.S);
  for (size_t i = 0; i < t.size(); ++i) t[i] = (i * 7) % 4;
  t[3] = -100;
  t[8] = -100;
  for (Reduction r : kReductions)
    for (double eps : {0.0, 0.3}) {
      const ClassTargets<double> ct{t.data(), w.data(), -100, eps};
      std::vector<double> logp(n), loss(loss_size(r, d.N * d.S));
      const double z = cross_entropy_forward<double>(x.data(), d, ct, r, logp.data(), loss.data());
      const auto want = naive_cross_entropy(x, d, t, w, -100, eps, r);
      ASSERT_EQ(want.size(), loss.size());
      for (size_t i = 0; i < loss.size(); ++i) EXPECT_NEAR(loss[i], want[i], 1e-12);

      const std::vector<double> g = test_values(loss.size(), 2);
      std::vector<double> dx(n);
      cross_entropy_backward<double>(g.data(), logp.data(), d, ct, r, z, dx.data());
      const auto num = numeric_vjp(
          [&](const auto& v) { return naive_cross_entropy(v, d, t, w, -100, eps, r); }, x, g);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(dx[i], num[i], 1e-6);
    }
}

TEST(CrossEntropy, SoftTargetsMatchFiniteDifferences) {
  const ClassDims d{2, 3, 4};
  const int64_t n = d.N * d.C * d.S;
  const std::vector<double> x = test_values(n, 3), p = test_values(n, 4, 0.5),
                            w = {1.0, 0.5, 2.0};
  for (Reduction r : kReductions) {
    const size_t ln = loss_size(r, d.N * d.S);
    auto loss_of = [&](const std::vector<double>& xv, const std::vector<double>& pv) {
      std::vector<double> logp(n), loss(ln);
      soft_cross_entropy_forward<double>(xv.data(), pv.data(), w.data(), d, 0.2, r, logp.data(),
                                         loss.data());
      return loss;
    };
    const std::vector<double> g = test_values(ln, 5);
    std::vector<double> logp(n), loss(ln), dx(n), dp(n);
    soft_cross_entropy_forward<double>(x.data(), p.data(), w.data(), d, 0.2, r, logp.data(),
                                       loss.data());
    soft_cross_entropy_backward<double>(g.data(), logp.data(), p.data(), w.data(), d, 0.2, r,
                                        dx.data(), dp.data());
    const auto nx = numeric_vjp([&](const auto& v) { return loss_of(v, p); }, x, g);
    const auto np = numeric_vjp([&](const auto& v) { return loss_of(x, v); }, p, g);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(dx[i], nx[i], 1e-6);
      EXPECT_NEAR(dp[i], np[i], 1e-6);
    }
  }
}

TEST(CrossEntropy, RejectsOutOfRangeTargetsBeforeReading) {
  const ClassDims d{2, 3, 1};
  std::vector<float> x(6), logp(6), loss(1);
  for (int64_t bad : {int64_t(3), int64_t(-1), int64_t(1) << 40}) {
    const int64_t t[2] = {0, bad};
    const ClassTargets<float> ct{t, nullptr, -100, 0.f};
    try {
      cross_entropy_forward<float>(x.data(), d, ct, Reduction::Mean, logp.data(), loss.data());
      FAIL() << "no throw for target " << bad;
    } catch (const ValueError& e) {
      EXPECT_NE(std::strstr(e.what(), "3 classes"), nullptr) << e.what();
    }
    EXPECT_THROW(nll_loss_backward<float>(loss.data(), d, ct, Reduction::Mean, 1.f, x.data()),
                 ValueError);
  }
  const int64_t ok[2] = {0, 2};
  const ClassTargets<float> smooth{ok, nullptr, -100, 1.5f};
  EXPECT_THROW(nll_loss_forward<float>(x.data(), d, smooth, Reduction::Sum, loss.data()),
               ValueError);
}

TEST(Reduction, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_reduction("mean", "op"), Reduction::Mean);
  EXPECT_EQ(parse_reduction("sum", "op"), Reduction::Sum);
  EXPECT_EQ(parse_reduction("none", "op"), Reduction::None);
  EXPECT_THROW(parse_reduction("avg", "op"), ValueError);
}

TEST(Reduction, SumDoesNotDependOnThreadCount) {
  const size_t n = 1 << 20;
  std::vector<float> x(n), y(n, 0.f);
  for (size_t i = 0; i < n; ++i) x[i] = float(std::sin(double(i)));
  float a = 0, b = 0;
  set_num_threads(1);
  regression_loss_forward<float>(Regression::MSE, x.data(), y.data(), nullptr, n, Reduction::Mean,
                                 &a);
  set_num_threads(2);
  regression_loss_forward<float>(Regression::MSE, x.data(), y.data(), nullptr, n, Reduction::Mean,
                                 &b);
  EXPECT_EQ(a, b);
}

// Each elementwise loss, as a function of (x, y, weight) for finite differences.
struct Elementwise {
  const char* name;
  std::function<void(const double*, const double*, const double*, int64_t, Reduction, double*)>
      forward;
  std::function<void(const double*, const double*, const double*, const double*, int64_t,
                     Reduction, double*, double*, double*)>
      backward;  // dloss, x, y, w, n, r, dx, dy, dw
  std::function<double(double, double, double)> term;  // unreduced, for the reference
};

TEST(ElementwiseLosses, MatchNaiveAndFiniteDifferences) {
  const std::vector<double> pw = test_values(12, 9, 1.0);
  const std::vector<Elementwise> losses = {
      {"mse",
       [](auto x, auto y, auto w, int64_t n, Reduction r, double* l) {
         regression_loss_forward<double>(Regression::MSE, x, y, w, n, r, l);
       },
       [](auto g, auto x, auto y, auto w, int64_t n, Reduction r, auto dx, auto dy, auto dw) {
         regression_loss_backward<double>(Regression::MSE, g, x, y, w, n, r, dx, dy, dw);
       },
       [](double x, double y, double w) { return w * (x - y) * (x - y); }},
      {"l1",
       [](auto x, auto y, auto w, int64_t n, Reduction r, double* l) {
         regression_loss_forward<double>(Regression::L1, x, y, w, n, r, l);
       },
       [](auto g, auto x, auto y, auto w, int64_t n, Reduction r, auto dx, auto dy, auto dw) {
         regression_loss_backward<double>(Regression::L1, g, x, y, w, n, r, dx, dy, dw);
       },
       [](double x, double y, double w) { return w * std::abs(x - y); }},
      {"smooth_l1",
       [](auto x, auto y, auto w, int64_t n, Reduction r, double* l) {
         regression_loss_forward<double>(Regression::SmoothL1, x, y, w, n, r, l, 0.7);
       },
       [](auto g, auto x, auto y, auto w, int64_t n, Reduction r, auto dx, auto dy, auto dw) {
         regression_loss_backward<double>(Regression::SmoothL1, g, x, y, w, n, r, dx, dy, dw, 0.7);
       },
       [](double x, double y, double w) {
         const double a = std::abs(x - y);
         return w * (a < 0.7 ? 0.5 * a * a / 0.7 : a - 0.35);
       }},
      {"huber",
       [](auto x, auto y, auto w, int64_t n, Reduction r, double* l) {
         regression_loss_forward<double>(Regression::Huber, x, y, w, n, r, l, 0.7);
       },
       [](auto g, auto x, auto y, auto w, int64_t n, Reduction r, auto dx, auto dy, auto dw) {
         regression_loss_backward<double>(Regression::Huber, g, x, y, w, n, r, dx, dy, dw, 0.7);
       },
       [](double x, double y, double w) {
         const double a = std::abs(x - y);
         return w * (a < 0.7 ? 0.5 * a * a : 0.7 * (a - 0.35));
       }},
      {"bce_with_logits",
       [&](auto x, auto y, auto w, int64_t n, Reduction r, double* l) {
         bce_with_logits_forward<double>(x, y, w, pw.data(), n, r, l);
       },
       [&](auto g, auto x, auto y, auto w, int64_t n, Reduction r, auto dx, auto dy, auto) {
         bce_with_logits_backward<double>(g, x, y, w, pw.data(), n, r, dx, dy);
       },
       nullptr},
  };
  const int64_t n = 12;
  const std::vector<double> x = test_values(n, 1, 3.0), y = test_values(n, 2, 1.0),
                            w = test_values(n, 3, 1.0);
  std::vector<double> wpos(n);
  for (int64_t i = 0; i < n; ++i) wpos[i] = 1.5 + w[i];
  for (const auto& L : losses)
    for (Reduction r : kReductions) {
      const size_t ln = loss_size(r, n);
      auto value = [&](const std::vector<double>& xv, const std::vector<double>& yv,
                       const std::vector<double>& wv) {
        std::vector<double> l(ln);
        L.forward(xv.data(), yv.data(), wv.data(), n, r, l.data());
        return l;
      };
      const auto l = value(x, y, wpos);
      if (L.term) {
        double s = 0, ws = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double t = L.term(x[i], y[i], wpos[i]);
          s += t;
          ws += wpos[i];
          if (r == Reduction::None) {
            EXPECT_NEAR(l[i], t, 1e-12) << L.name;
          }
        }
        if (r != Reduction::None) {
          EXPECT_NEAR(l[0], r == Reduction::Mean ? s / ws : s, 1e-12);
        }
      }
      const std::vector<double> g = test_values(ln, 4);
      std::vector<double> dx(n), dy(n), dw(n);
      L.backward(g.data(), x.data(), y.data(), wpos.data(), n, r, dx.data(), dy.data(), dw.data());
      const auto nx = numeric_vjp([&](const auto& v) { return value(v, y, wpos); }, x, g);
      const auto ny = numeric_vjp([&](const auto& v) { return value(x, v, wpos); }, y, g);
      const auto nw = numeric_vjp([&](const auto& v) { return value(x, y, v); }, wpos, g);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(dx[i], nx[i], 1e-6) << L.name;
        EXPECT_NEAR(dy[i], ny[i], 1e-6) << L.name;
        if (L.term) {
          EXPECT_NEAR(dw[i], nw[i], 1e-6) << L.name;
        }
      }
    }
}

TEST(BCEWithLogits, ExtremeLogitsStayFinite) {
  const float x[2] = {-200.f, 200.f}, y[2] = {1.f, 0.f};
  float l[2], dx[2];
  bce_with_logits_forward<float>(x, y, nullptr, nullptr, 2, Reduction::None, l);
  EXPECT_FLOAT_EQ(l[0], 200.f);
  EXPECT_FLOAT_EQ(l[1], 200.f);
  const float g[2] = {1.f, 1.f};
  bce_with_logits_backward<float>(g, x, y, nullptr, nullptr, 2, Reduction::None, dx, nullptr);
  EXPECT_FLOAT_EQ(dx[0], -1.f);
  EXPECT_FLOAT_EQ(dx[1], 1.f);
}

TEST(BinaryCrossEntropy, MatchesNaiveAndFiniteDifferences) {
  const int64_t n = 10;
  std::vector<double> x(n), y = test_values(n, 2, 1.0), w = test_values(n, 3, 1.0);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = 0.1 + 0.08 * double(i);  // inside (0, 1)
    y[i] = 0.5 + 0.4 * y[i];
    w[i] = 1.5 + w[i];
  }
  for (Reduction r : kReductions) {
    const size_t ln = loss_size(r, n);
    auto value = [&](const std::vector<double>& xv, const std::vector<double>& yv) {
      std::vector<double> l(ln);
      bce_forward<double>(xv.data(), yv.data(), w.data(), n, r, l.data());
      return l;
    };
    const auto l = value(x, y);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double t = -w[i] * (y[i] * std::log(x[i]) + (1 - y[i]) * std::log(1 - x[i]));
      s += t;
      if (r == Reduction::None) {
        EXPECT_NEAR(l[i], t, 1e-12);
      }
    }
    if (r != Reduction::None) {
      EXPECT_NEAR(l[0], r == Reduction::Mean ? s / n : s, 1e-12);
    }
    const std::vector<double> g = test_values(ln, 4);
    std::vector<double> dx(n), dy(n);
    bce_backward<double>(g.data(), x.data(), y.data(), w.data(), n, r, dx.data(), dy.data());
    const auto nx = numeric_vjp([&](const auto& v) { return value(v, y); }, x, g);
    const auto ny = numeric_vjp([&](const auto& v) { return value(x, v); }, y, g);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(dx[i], nx[i], 1e-6);
      EXPECT_NEAR(dy[i], ny[i], 1e-6);
    }
  }
}

// PyTorch clamps each log at -100, so probabilities of exactly 0 and 1 give a finite
// loss; an input outside [0, 1] is refused before anything is written.
TEST(BinaryCrossEntropy, ClampsLogsAndRefusesOutOfRange) {
  const double x[3] = {0.0, 1.0, 0.5}, y[3] = {1.0, 0.0, 1.0};
  double l[3] = {-1, -1, -1};
  bce_forward<double>(x, y, nullptr, 3, Reduction::None, l);
  EXPECT_EQ(l[0], 100.0);
  EXPECT_EQ(l[1], 100.0);
  EXPECT_NEAR(l[2], std::log(2.0), 1e-15);
  const double bad[2] = {0.5, 1.5};
  double out = -1;
  EXPECT_THROW(bce_forward<double>(bad, y, nullptr, 2, Reduction::Sum, &out), ValueError);
  EXPECT_EQ(out, -1);
}

TEST(MultiMargin, MatchesNaiveAndFiniteDifferences) {
  const int64_t N = 4, C = 5;
  const std::vector<double> x = test_values(N * C, 6), w = {1.0, 0.5, 2.0, 1.5, 0.7};
  const std::vector<int64_t> t = {0, 3, 4, 1};
  for (int p : {1, 2})
    for (Reduction r : kReductions) {
      const size_t ln = loss_size(r, N);
      auto value = [&](const std::vector<double>& xv) {
        std::vector<double> l(ln);
        multi_margin_forward<double>(xv.data(), t.data(), w.data(), N, C, p, 0.8, r, l.data());
        return l;
      };
      double total = 0;
      const auto l = value(x);
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double h = 0.8 - x[n * C + t[n]] + x[n * C + c];
          if (c != t[n] && h > 0) s += std::pow(h, p);
        }
        s *= w[t[n]] / C;
        total += s;
        if (r == Reduction::None) {
          EXPECT_NEAR(l[n], s, 1e-12);
        }
      }
      if (r != Reduction::None) {
        EXPECT_NEAR(l[0], r == Reduction::Mean ? total / N : total, 1e-12);
      }
      const std::vector<double> g = test_values(ln, 7);
      std::vector<double> dx(N * C);
      multi_margin_backward<double>(g.data(), x.data(), t.data(), w.data(), N, C, p, 0.8, r,
                                    dx.data());
      const auto num = numeric_vjp([&](const auto& v) { return value(v); }, x, g);
      for (int64_t i = 0; i < N * C; ++i) EXPECT_NEAR(dx[i], num[i], 1e-6);
    }
}

TEST(MultiMargin, RejectsBadPAndTargets) {
  std::vector<float> x(6), l(2);
  const int64_t ok[2] = {0, 2}, bad[2] = {0, 3};
  EXPECT_THROW(multi_margin_forward<float>(x.data(), ok, nullptr, 2, 3, 3, 1.f, Reduction::None,
                                           l.data()),
               ValueError);
  EXPECT_THROW(multi_margin_forward<float>(x.data(), bad, nullptr, 2, 3, 1, 1.f, Reduction::None,
                                           l.data()),
               ValueError);
}

}  // namespace
}  // namespace kiln
