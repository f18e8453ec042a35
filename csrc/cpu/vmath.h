// exp, expm1, tanh and erf in branch-free float arithmetic that the compiler
// vectorizes, and a lane-wise sum. glibc's expf/expm1f/tanhf are opaque scalar
// calls: a loop calling them runs one element at a time unless built with
// -ffast-math, which kiln avoids.
// double keeps the std:: functions (gradient checks want their last bit).
// All are KILN_HD: the CUDA twins of the pointwise ops (cuda/activation.cu) run the
// same formulas, so both devices agree to an ulp or two.
//
//   exp(x)   = 2^n exp(r),  n = round(x / ln2),  r = x - n ln2 in [-ln2/2, ln2/2]
//              (ln2 split in two for an exact reduction; Cephes' minimax polynomial,
//              about 1 ulp; 2^n built from two halves so that n = -149 .. 128 all work)
//   expm1(x) = Taylor series to x^8 for |x| < 1/2 (relative error < 2e-8), else exp(x) - 1
//   tanh(x)  = sign(x) e / (e + 2),  e = expm1(2|x|)   (exactly +-1 past |x| = 9)
//   erf(x)   = sign(x) (1 - t P(t) exp(-x^2)),  t = 1 / (1 + 0.3275911 |x|)
//              (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7: the formula
//              PyTorch's vectorized float erf uses)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/hd.h"

namespace kiln::vmath {

namespace detail {

// 2^e as a float, for e in [-126, 127].
KILN_HD inline float pow2(int32_t e) {
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace detail

KILN_HD inline float exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kOverflow = 88.72283935546875f, kUnderflow = -103.972084f;
  // min(max(x, -104), 88.8) as std::min/max compare (NaN passes through), written
  // out so that device code needs no constexpr std:: functions.
  const float lo = x < -104.0f ? -104.0f : x;
  const float xc = 88.8f < lo ? 88.8f : lo;
  const float xs = xc == xc ? xc : 0.0f;  // a number for the exponent, even for NaN
  // Round to nearest by adding and removing 1.5 * 2^23 (std::nearbyint/floor would
  // not vectorize without -fno-trapping-math); |xs * log2e| < 2^22 keeps it exact.
  constexpr float kRound = 12582912.0f;
  const float n = (xs * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n), half = ni / 2;
  p = p * detail::pow2(half) * detail::pow2(ni - half);
  return x > kOverflow ? HUGE_VALF : x < kUnderflow ? 0.0f : p;
}

KILN_HD inline float expm1(float x) {
  float t = 1.0f / 40320;
  t = t * x + 1.0f / 5040;
  t = t * x + 1.0f / 720;
  t = t * x + 1.0f / 120;
  t = t * x + 1.0f / 24;
  t = t * x + 1.0f / 6;
  t = t * x + 0.5f;
  const float small = (t * x + 1.0f) * x;
  return std::abs(x) < 0.5f ? small : vmath::exp(x) - 1.0f;
}

KILN_HD inline float tanh(float x) {
  const float ax = std::abs(x);
  const float a = 9.0f < ax ? 9.0f : ax;
  const float e = vmath::expm1(2.0f * a);
  return std::copysign(e / (e + 2.0f), x);
}

KILN_HD inline float erf(float x) {
  const float a = std::abs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return std::copysign(1.0f - p * t * vmath::exp(-a * a), x);
}

// Reductions keep kLanes partial sums, so their loops vectorize without
// reassociating one floating-point sum (which only -ffast-math would allow).
constexpr int64_t kLanes = 16;

// sum_{i < n} f(i), in kLanes partial sums.
template <typename T, typename F>
T lane_sum(int64_t n, F f) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += f(i + l);
  T s = 0;
  for (; i < n; ++i) s += f(i);
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

KILN_HD inline double exp(double x) { return std::exp(x); }
KILN_HD inline double expm1(double x) { return std::expm1(x); }
KILN_HD inline double tanh(double x) { return std::tanh(x); }
KILN_HD inline double erf(double x) { return std::erf(x); }

}  // namespace kiln::vmath
