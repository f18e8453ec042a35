// The per-pixel math of the augmentation kernels, shared by the CPU loops
// (augment*.cpp) and the CUDA kernels (cuda/augment.cu): written once, KILN_HD, so a
// pixel is computed by the same expressions on either device. Formulas: augment.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "common/hd.h"
#include "cpu/augment.h"

namespace kiln::augment_detail {

// A computed value as a pixel: uint8 rounds half up and saturates (NaN -> 0),
// float passes through. Selects, not branches, so pixel loops vectorize.
template <typename T>
KILN_HD inline T to_pixel(float v) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    return static_cast<uint8_t>(static_cast<int32_t>(v + 0.5f));
  } else {
    return v;
  }
}

// Pad-mode index map of p into [0, size): -1 where a constant pad applies.
KILN_HD inline int64_t pad_index(int64_t p, int64_t size, PadMode mode) {
  if (p >= 0 && p < size) return p;
  switch (mode) {
    case PadMode::kConstant:
      return -1;
    case PadMode::kEdge:
      return p < 0 ? 0 : size - 1;
    case PadMode::kReflect: {
      if (size == 1) return 0;
      const int64_t period = 2 * (size - 1);
      int64_t q = p % period;
      if (q < 0) q += period;
      return q < size ? q : period - q;
    }
  }
  return -1;
}

// Bilinear sample of one (h, w) plane at input position (xs, ys): taps outside the
// image read pad; far outside (or beyond int64) every tap does.
template <typename T>
KILN_HD inline float bilinear_sample(const T* src, int64_t h, int64_t w, double xs, double ys,
                                     float pad) {
  if (!(xs > -2 && xs < w + 1 && ys > -2 && ys < h + 1)) return pad;
  const double fx0 = std::floor(xs), fy0 = std::floor(ys);
  const int64_t x0 = static_cast<int64_t>(fx0), y0 = static_cast<int64_t>(fy0);
  const float ax = static_cast<float>(xs - fx0), ay = static_cast<float>(ys - fy0);
  auto at = [&](int64_t r, int64_t q) {
    return r >= 0 && r < h && q >= 0 && q < w ? static_cast<float>(src[r * w + q]) : pad;
  };
  const float top = (1 - ax) * at(y0, x0) + ax * at(y0, x0 + 1);
  const float bottom = (1 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1);
  return (1 - ay) * top + ay * bottom;
}

// ---- color jitter (torchvision's tensor semantics)

// Clamps to [0, bound] with comparisons (std::fmin/fmax are library calls
// unless NaN semantics are relaxed; these vectorize). NaN stays NaN.
KILN_HD inline float clamp_to(float v, float bound) {
  v = v < 0.0f ? 0.0f : v;
  return v > bound ? bound : v;
}

// torchvision's rgb_to_grayscale weights; Truncate: uint8 images (integer gray).
template <bool Truncate>
KILN_HD inline float gray_value(float r, float g, float b) {
  const float v = 0.2989f * r + 0.587f * g + 0.114f * b;
  if constexpr (Truncate) return std::floor(v);
  return v;
}

// One value of a blend x <- clamp(f x + (1 - f) other): mixed = (1 - f) * other.
KILN_HD inline float blend_value(float keep, float v, float mixed, float bound) {
  return clamp_to(keep * v + mixed, bound);
}

// torchvision's _rgb2hsv, hue turn by f, _hsv2rgb of one pixel (r, g, b) in
// [0, bound] (to_unit = 1 / bound). Every candidate is computed and the result
// picked by plain selects (no branches, no ||) so the CPU's pixel loop vectorizes.
// Truncate: uint8 images, whose float -> uint8 conversion in torchvision
// multiplies by 255.999 and truncates.
template <bool Truncate>
KILN_HD inline void hue_pixel(float& r, float& g, float& b, float f, float to_unit) {
  const float R = r * to_unit, G = g * to_unit, B = b * to_unit;
  const float max_gb = G > B ? G : B, min_gb = G < B ? G : B;
  const float maxc = R > max_gb ? R : max_gb, minc = R < min_gb ? R : min_gb;
  // Gray pixels divide by 1 instead (torchvision's torch.where): cr = 0 there.
  const float flat = maxc == minc ? 1.0f : 0.0f;
  const float cr = maxc - minc;
  const float s = cr / (maxc + flat * (1.0f - maxc));
  const float div = cr + flat * (1.0f - cr);
  const float rc = (maxc - R) / div, gc = (maxc - G) / div, bc = (maxc - B) / div;
  const float h_r = bc - gc, h_g = 2.0f + rc - bc, h_b = 4.0f + gc - rc;
  float h = maxc == R ? h_r : (maxc == G ? h_g : h_b);
  h = h / 6.0f + 1.0f;  // in [5/6, 2]: x - floor(x) is fmod(x, 1) exactly here
  h -= std::floor(h);
  h += f;
  h -= std::floor(h);  // torch's remainder: into [0, 1]
  const float h6 = h * 6.0f, k = std::floor(h6), frac = h6 - k;
  const float p = clamp_to(maxc * (1 - s), 1.0f);
  const float q = clamp_to(maxc * (1 - s * frac), 1.0f);
  const float t = clamp_to(maxc * (1 - s * (1 - frac)), 1.0f);
  // Sector k of the hue circle (k = 6, h rounded up to 1, is sector 0):
  //   k:  0  1  2  3  4  5
  //   R:  v  q  p  p  t  v
  //   G:  t  v  v  q  p  p
  //   B:  p  p  t  v  v  q
  float R2 = p, G2 = p, B2 = p;
  R2 = k == 1.0f ? q : R2;
  R2 = k == 4.0f ? t : R2;
  R2 = k == 0.0f ? maxc : R2;
  R2 = k == 5.0f ? maxc : R2;
  R2 = k == 6.0f ? maxc : R2;
  G2 = k == 3.0f ? q : G2;
  G2 = k == 0.0f ? t : G2;
  G2 = k == 6.0f ? t : G2;
  G2 = k == 1.0f ? maxc : G2;
  G2 = k == 2.0f ? maxc : G2;
  B2 = k == 5.0f ? q : B2;
  B2 = k == 2.0f ? t : B2;
  B2 = k == 3.0f ? maxc : B2;
  B2 = k == 4.0f ? maxc : B2;
  if constexpr (Truncate) {
    r = std::floor(R2 * 255.999f);
    g = std::floor(G2 * 255.999f);
    b = std::floor(B2 * 255.999f);
  } else {
    r = R2;
    g = G2;
    b = B2;
  }
}

}  // namespace kiln::augment_detail
