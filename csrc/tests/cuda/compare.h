// Test helpers for comparing a CUDA kernel with its CPU twin: random inputs and a
// closeness check scaled to the result (float32: relative 1e-4 of the largest
// value; float64: 1e-10).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace kiln::cuda {

template <typename T>
std::vector<T> random_values(size_t n, unsigned seed, double lo = -1, double hi = 1) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(gen));
  return v;
}

template <typename T>
double tolerance() {
  return sizeof(T) == 4 ? 1e-4 : 1e-10;
}

// Every gpu[i] within tolerance * (|cpu[i]| + max |cpu|) of cpu[i]; NaN where cpu is NaN.
template <typename T>
void expect_close(const std::vector<T>& gpu, const std::vector<T>& cpu, const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double scale = 0;
  for (T v : cpu)
    if (std::isfinite(double(v))) scale = std::max(scale, std::abs(double(v)));
  const double tol = tolerance<T>();
  int64_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double a = gpu[i], b = cpu[i];
    const bool ok = std::isnan(b) ? std::isnan(a) : std::abs(a - b) <= tol * (std::abs(b) + scale);
    if (!ok && ++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: gpu " << a << ", cpu " << b;
  }
  EXPECT_EQ(bad, 0) << what;
}

}  // namespace kiln::cuda
