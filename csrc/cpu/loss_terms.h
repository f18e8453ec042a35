// The per-element formulas of the losses (cpu/loss.h's header comment), written once
// for the CPU kernels (cpu/loss.cpp) and their CUDA twins (cuda/loss.cu): KILN_HD.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/hd.h"
#include "cpu/loss.h"

namespace kiln::loss_terms {

// Element (position i, class c) of an (N, C, S) array.
KILN_HD inline int64_t at(ClassDims d, int64_t i, int64_t c) {
  return (i / d.S * d.C + c) * d.S + i % d.S;
}

// The unweighted regression term e(diff; param).
template <typename T>
KILN_HD T regression_term(Regression kind, T diff, T param) {
  const T a = std::abs(diff);
  switch (kind) {
    case Regression::MSE: return diff * diff;
    case Regression::L1: return a;
    case Regression::SmoothL1: return a < param ? T(0.5) * diff * diff / param : a - T(0.5) * param;
    case Regression::Huber: return a < param ? T(0.5) * diff * diff : param * (a - T(0.5) * param);
  }
  return a;
}

// de/d(diff), 0 at the kink of l1 (and of smooth_l1 with beta 0).
template <typename T>
KILN_HD T regression_slope(Regression kind, T diff, T param) {
  const T sign = T((diff > T(0)) - (diff < T(0)));
  switch (kind) {
    case Regression::MSE: return T(2) * diff;
    case Regression::L1: return sign;
    case Regression::SmoothL1: return std::abs(diff) < param ? diff / param : sign;
    case Regression::Huber: return diff < -param ? -param : diff > param ? param : diff;
  }
  return sign;
}

// log(sigmoid(v)) = min(v, 0) - log1p(exp(-|v|)), finite for any v.
template <typename T>
KILN_HD T log_sigmoid(T v) {
  return (v < T(0) ? v : T(0)) - std::log1p(std::exp(-std::abs(v)));
}

// binary_cross_entropy_with_logits, pw1 = pos_weight - 1 (0 without one): the
// unweighted term and its derivatives in x and y.
template <typename T>
KILN_HD T bce_logits_term(T x, T y, T pw1) {
  return (T(1) - y) * x - (T(1) + pw1 * y) * log_sigmoid(x);
}
template <typename T>
KILN_HD T bce_logits_dx(T x, T y, T pw1) {
  return (T(1) - y) - (T(1) + pw1 * y) / (T(1) + std::exp(x));
}
template <typename T>
KILN_HD T bce_logits_dy(T x, T pw1) {
  return -x - pw1 * log_sigmoid(x);
}

// binary_cross_entropy of a probability x in [0, 1], logs clamped to >= -100.
template <typename T>
KILN_HD T bce_term(T x, T y) {
  const T l1 = T(std::log1p(-x)), l0 = T(std::log(x));
  return (y - T(1)) * (l1 < T(-100) ? T(-100) : l1) - y * (l0 < T(-100) ? T(-100) : l0);
}
template <typename T>
KILN_HD T bce_dx(T x, T y) {
  const T v = (T(1) - x) * x;
  return (x - y) / (v < T(1e-12) ? T(1e-12) : v);
}
template <typename T>
KILN_HD T bce_dy(T x) {
  return T(std::log1p(-x)) - T(std::log(x));
}

// multi_margin_loss: the hinge h = margin - x_t + x_c's contribution for c != t
// (h^p when positive, else 0) and, for h > 0, its derivative in x_c.
template <typename T>
KILN_HD T margin_term(T h, int p) {
  return h > T(0) ? (p == 1 ? h : h * h) : T(0);
}
template <typename T>
KILN_HD T margin_slope(T h, int p) {
  return p == 1 ? T(1) : T(2) * h;
}

}  // namespace kiln::loss_terms
