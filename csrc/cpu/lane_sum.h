// Vectorizable floating-point sums for the kernels' reductions.
#pragma once

#include <cstdint>

namespace kiln {

// sum_{i<n} term(i) in double. Independent lanes let the compiler vectorize the
// loop without -ffast-math (a single accumulator is a serial dependency chain),
// and pairwise-like partial sums keep the rounding error small.
template <typename F>
double lane_sum(int64_t n, F&& term) {
  constexpr int kLanes = 16;
  if (n < kLanes) {  // short runs (e.g. rows of one value): skip the lane setup
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += term(i);
    return sum;
  }
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  const int64_t rest = n - i;
  for (int j = 0; j < rest && j < kLanes; ++j) acc[j] += term(i + j);
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0];
}

}  // namespace kiln
