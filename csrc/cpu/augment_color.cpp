// Color jitter with torchvision's tensor semantics: brightness, contrast,
// saturation and hue, in a per-image order, each a blend (or an HSV hue turn)
// clamped to the value range. An image is processed in a float copy of its
// planes; uint8 images truncate after every op, as torchvision's uint8 ops do,
// so the result matches theirs. Formulas: augment.h.
// Without it GCC turns the selects of the hue loop into conditional (possibly
// trapping) float ops and does not vectorize it; results are the same bits.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "cpu/augment.h"
#include "cpu/augment_detail.h"

namespace kiln {

using augment_detail::for_each_image;

namespace {

// Clamps to [0, bound] with comparisons (std::fmin/fmax are library calls
// unless NaN semantics are relaxed; these vectorize). NaN stays NaN.
inline float clamp_to(float v, float bound) {
  v = v < 0.0f ? 0.0f : v;
  return v > bound ? bound : v;
}

// torchvision's _rgb2hsv, hue turn by f, _hsv2rgb, on values scaled to [0, 1].
// Every candidate is computed and the result picked by plain selects (no
// branches, no || ) so the pixel loop vectorizes. Truncate: uint8 images, whose
// float -> uint8 conversion in torchvision multiplies by 255.999 and truncates.
template <bool Truncate>
void hue_planes(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float f,
                float bound) {
  const float to_unit = 1.0f / bound;
  for (int64_t i = 0; i < n; ++i) {
    const float R = r[i] * to_unit, G = g[i] * to_unit, B = b[i] * to_unit;
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
      r[i] = std::floor(R2 * 255.999f);
      g[i] = std::floor(G2 * 255.999f);
      b[i] = std::floor(B2 * 255.999f);
    } else {
      r[i] = R2;
      g[i] = G2;
      b[i] = B2;
    }
  }
}

// One image's planes (c = 1 or 3) held as floats in [0, bound]. Members are
// copied into locals in each loop so the compiler sees no aliasing and vectorizes.
struct Planes {
  float* v;
  int64_t c, hw;
  float bound;
  bool truncate;  // uint8: values are integers after every op
  float* gray;    // hw scratch

  void grayscale() const {
    const int64_t n = hw;
    float* __restrict out = gray;
    if (c == 1) {
      for (int64_t i = 0; i < n; ++i) out[i] = v[i];
      return;
    }
    const float *__restrict r = v, *__restrict g = v + n, *__restrict b = v + 2 * n;
    if (truncate)
      for (int64_t i = 0; i < n; ++i) out[i] = std::floor(0.2989f * r[i] + 0.587f * g[i] + 0.114f * b[i]);
    else
      for (int64_t i = 0; i < n; ++i) out[i] = 0.2989f * r[i] + 0.587f * g[i] + 0.114f * b[i];
  }

  // x <- clamp(f x + (1 - f) other), other per pixel or (per_pixel false) the constant other[0].
  void blend(float f, const float* other, bool per_pixel) const {
    const int64_t n = hw;
    const float hi = bound, keep = f, mix = 1 - f;
    for (int64_t k = 0; k < c; ++k) {
      float* __restrict p = v + k * n;
      const float* __restrict o = other;
      if (per_pixel) {
        for (int64_t i = 0; i < n; ++i) p[i] = clamp_to(keep * p[i] + mix * o[i], hi);
      } else {
        const float m = mix * o[0];
        for (int64_t i = 0; i < n; ++i) p[i] = clamp_to(keep * p[i] + m, hi);
      }
      if (truncate)
        for (int64_t i = 0; i < n; ++i) p[i] = std::floor(p[i]);
    }
  }

  void brightness(float f) const {
    const float zero = 0.0f;
    blend(f, &zero, false);
  }

  void contrast(float f) const {
    grayscale();
    double total = 0;
    for (int64_t i = 0; i < hw; ++i) total += gray[i];
    const float mean = static_cast<float>(total / hw);
    blend(f, &mean, false);
  }

  void saturation(float f) const {
    if (c == 1) return;
    grayscale();
    blend(f, gray, true);
  }

  void hue(float f) const {
    if (c == 1) return;
    if (truncate)
      hue_planes<true>(v, v + hw, v + 2 * hw, hw, f, bound);
    else
      hue_planes<false>(v, v + hw, v + 2 * hw, hw, f, bound);
  }
};

}  // namespace

template <typename T>
void augment_color_jitter(const T* x, T* y, const ImageBatch& b, const float* factors,
                          const int8_t* order) {
  const char* op = "augment_color_jitter";
  check_image_batch(op, b);
  if (b.c != 1 && b.c != 3)
    fail(op, ": expected 1 or 3 channels, got images of shape ", shape_str({b.n, b.c, b.h, b.w}));
  for (int64_t k = 0; k < 4 * b.n; ++k) {
    if (order[k] < -1 || order[k] > 3)
      fail(op, ": order[", k / 4, "] holds ", int(order[k]), "; ops are 0..3 (or -1 for none)");
    if (!std::isfinite(factors[k]))
      fail(op, ": factor ", k % 4, " of image ", k / 4, " is not finite: ", factors[k]);
  }
  constexpr bool is_byte = std::is_same_v<T, uint8_t>;
  const int64_t hw = b.plane(), size = b.image();
  for_each_image(b, [&](int64_t n) {
    thread_local std::vector<float> buffer;
    buffer.resize(size + hw);
    // Locals with __restrict: a uint8 store may alias anything, even the captured sizes.
    const int64_t count = size;
    const T* __restrict src = x + n * count;
    T* __restrict dst = y + n * count;
    float* __restrict values = buffer.data();
    for (int64_t i = 0; i < count; ++i) values[i] = static_cast<float>(src[i]);
    const Planes planes{buffer.data(), b.c, hw, is_byte ? 255.0f : 1.0f, is_byte,
                        buffer.data() + size};
    const float* f = factors + 4 * n;
    for (int k = 0; k < 4; ++k) {
      switch (order[4 * n + k]) {
        case kBrightness: planes.brightness(f[kBrightness]); break;
        case kContrast: planes.contrast(f[kContrast]); break;
        case kSaturation: planes.saturation(f[kSaturation]); break;
        case kHue: planes.hue(f[kHue]); break;
        default: break;
      }
    }
    for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(values[i]);
  });
}

template void augment_color_jitter<uint8_t>(const uint8_t*, uint8_t*, const ImageBatch&,
                                            const float*, const int8_t*);
template void augment_color_jitter<float>(const float*, float*, const ImageBatch&, const float*,
                                          const int8_t*);

}  // namespace kiln
