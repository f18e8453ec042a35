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

using augment_detail::blend_value;
using augment_detail::for_each_image;
using augment_detail::gray_value;
using augment_detail::hue_pixel;

namespace {

// Each hue turn of a pixel: augment_pixel.h's hue_pixel, on three planes.
template <bool Truncate>
void hue_planes(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float f,
                float bound) {
  const float to_unit = 1.0f / bound;
  for (int64_t i = 0; i < n; ++i) hue_pixel<Truncate>(r[i], g[i], b[i], f, to_unit);
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
      for (int64_t i = 0; i < n; ++i) out[i] = gray_value<true>(r[i], g[i], b[i]);
    else
      for (int64_t i = 0; i < n; ++i) out[i] = gray_value<false>(r[i], g[i], b[i]);
  }

  // x <- clamp(f x + (1 - f) other), other per pixel or (per_pixel false) the constant other[0].
  void blend(float f, const float* other, bool per_pixel) const {
    const int64_t n = hw;
    const float hi = bound, keep = f, mix = 1 - f;
    for (int64_t k = 0; k < c; ++k) {
      float* __restrict p = v + k * n;
      const float* __restrict o = other;
      if (per_pixel) {
        for (int64_t i = 0; i < n; ++i) p[i] = blend_value(keep, p[i], mix * o[i], hi);
      } else {
        const float m = mix * o[0];
        for (int64_t i = 0; i < n; ++i) p[i] = blend_value(keep, p[i], m, hi);
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
  check_color_jitter(b, factors, order);
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
