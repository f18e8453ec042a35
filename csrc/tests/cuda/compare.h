// Test helpers for comparing a CUDA kernel with its CPU twin: random host inputs and
// an elementwise comparison (float32: relative 1e-4 with a small absolute floor for
// values near zero; float64: relative 1e-12; NaN equals NaN, infinities must match).
#pragma once

#include <gtest/gtest.h>

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

}  // namespace kiln::cuda
