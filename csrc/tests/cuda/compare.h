// Test helpers for comparing a CUDA kernel with its CPU twin: random host inputs and
// two closeness checks.
//   expect_close         elementwise (float32: relative 1e-4 with a small absolute
//                        floor near zero; float64: relative 1e-12; NaN equals NaN,
//                        infinities must match): pointwise ops, losses, updates
//   expect_close_scaled  each element within tolerance * (|cpu| + max |cpu|) (float32
//                        1e-4, float64 1e-10): long sums (products, convolutions,
//                        norms) whose small elements carry the large ones' rounding
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

namespace kiln::cuda {

template <typename T>
std::vector<T> random_values(size_t n, uint32_t seed, double lo = -3, double hi = 3) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(gen));
  return v;
}

// rtol: the default for T unless given (a float computation reported in double).
template <typename T>
void expect_close(const std::vector<T>& gpu, const std::vector<T>& cpu, const char* what,
                  double rtol = 0) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  constexpr bool single = std::is_same_v<T, float>;
  if (rtol == 0) rtol = single ? 1e-4 : 1e-12;
  const double atol = single ? 1e-6 : 1e-14;
  int reported = 0;
  for (size_t i = 0; i < cpu.size() && reported < 5; ++i) {
    const double g = gpu[i], c = cpu[i];
    bool ok;
    if (std::isnan(c)) ok = std::isnan(g);
    else if (std::isinf(c)) ok = g == c;
    else ok = std::abs(g - c) <= rtol * std::max(std::abs(g), std::abs(c)) + atol;
    if (!ok) {
      ADD_FAILURE() << what << ": element " << i << " gpu " << g << " cpu " << c;
      ++reported;
    }
  }
}

template <typename T>
double scaled_tolerance() {
  return sizeof(T) == 4 ? 1e-4 : 1e-10;
}

template <typename T>
void expect_close_scaled(const std::vector<T>& gpu, const std::vector<T>& cpu,
                         const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double scale = 0;
  for (T v : cpu)
    if (std::isfinite(double(v))) scale = std::max(scale, std::abs(double(v)));
  const double tol = scaled_tolerance<T>();
  int64_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double a = gpu[i], b = cpu[i];
    const bool ok = std::isnan(b) ? std::isnan(a) : std::abs(a - b) <= tol * (std::abs(b) + scale);
    if (!ok && ++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: gpu " << a << ", cpu " << b;
  }
  EXPECT_EQ(bad, 0) << what;
}

}  // namespace kiln::cuda
