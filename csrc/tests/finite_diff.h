// Central finite differences for the kernel tests: the reference every backward
// kernel is held against, in double precision.
#pragma once

#include <functional>
#include <vector>

namespace kiln::testing {

// d f / d x_i for every i, where f maps the whole vector to a scalar.
inline std::vector<double> numeric_grad(const std::function<double(const std::vector<double>&)>& f,
                                        std::vector<double> x, double eps = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    x[i] = v + eps;
    const double hi = f(x);
    x[i] = v - eps;
    const double lo = f(x);
    x[i] = v;
    g[i] = (hi - lo) / (2 * eps);
  }
  return g;
}

// Deterministic test data in [-scale, scale): a fixed LCG, no global state.
inline std::vector<double> test_values(size_t n, unsigned seed = 1, double scale = 2.0) {
  std::vector<double> v(n);
  unsigned s = seed * 2654435761u + 12345u;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (2.0 * (s >> 8) / double(1u << 24) - 1.0);
  }
  return v;
}

// sum_i a_i b_i: contracts an output with a fixed upstream gradient, so the finite
// difference of one scalar checks a whole backward pass.
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Finite-difference vector-Jacobian product: d <f(x), g> / dx, the quantity a
// backward kernel computes from the upstream gradient g.
inline std::vector<double> numeric_vjp(
    const std::function<std::vector<double>(const std::vector<double>&)>& f,
    const std::vector<double>& x, const std::vector<double>& g) {
  return numeric_grad([&](const std::vector<double>& v) { return dot(f(v), g); }, x);
}

}  // namespace kiln::testing
