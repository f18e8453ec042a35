// Color jitter with torchvision's tensor semantics: brightness, contrast,
// saturation and hue, in a per-image order, each a blend (or an HSV hue turn)
// clamped to the value range. An image is processed in a float copy of its
// planes; uint8 images truncate after every op, as torchvision's uint8 ops do,
// so the result matches theirs. Formulas: augment.h.
#include <cmath>
#include <vector>

#include "common/check.h"
#include "cpu/augment.h"
#include "cpu/augment_detail.h"

namespace kiln {

using augment_detail::for_each_image;

namespace {

// One image's planes (c = 1 or 3) held as floats in [0, bound].
struct Planes {
  float* v;
  int64_t c, hw;
  float bound;
  bool truncate;  // uint8: values are integers after every op
  float* gray;    // hw scratch

  void finish(float* p) const {
    for (int64_t i = 0; i < hw; ++i) {
      const float t = std::fmin(std::fmax(p[i], 0.0f), bound);
      p[i] = truncate ? std::floor(t) : t;
    }
  }

  void grayscale() const {
    if (c == 1) {
      for (int64_t i = 0; i < hw; ++i) gray[i] = v[i];
      return;
    }
    const float *r = v, *g = v + hw, *b = v + 2 * hw;
    for (int64_t i = 0; i < hw; ++i) {
      const float l = 0.2989f * r[i] + 0.587f * g[i] + 0.114f * b[i];
      gray[i] = truncate ? std::floor(l) : l;
    }
  }

  // x <- f x + (1 - f) other, other per pixel (or the constant other[0] when per_pixel is false).
  void blend(float f, const float* other, bool per_pixel) const {
    for (int64_t k = 0; k < c; ++k) {
      float* p = v + k * hw;
      if (per_pixel)
        for (int64_t i = 0; i < hw; ++i) p[i] = f * p[i] + (1 - f) * other[i];
      else
        for (int64_t i = 0; i < hw; ++i) p[i] = f * p[i] + (1 - f) * other[0];
      finish(p);
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

  // torchvision's _rgb2hsv / _hsv2rgb on values scaled to [0, 1].
  void hue(float f) const {
    if (c == 1) return;
    float *r = v, *g = v + hw, *b = v + 2 * hw;
    const float to_unit = 1.0f / bound;
    for (int64_t i = 0; i < hw; ++i) {
      const float R = r[i] * to_unit, G = g[i] * to_unit, B = b[i] * to_unit;
      const float maxc = std::fmax(R, std::fmax(G, B)), minc = std::fmin(R, std::fmin(G, B));
      const bool flat = maxc == minc;
      const float cr = maxc - minc;
      const float s = cr / (flat ? 1.0f : maxc);
      const float div = flat ? 1.0f : cr;
      const float rc = (maxc - R) / div, gc = (maxc - G) / div, bc = (maxc - B) / div;
      float h = maxc == R ? bc - gc : (maxc == G ? 2.0f + rc - bc : 4.0f + gc - rc);
      h = std::fmod(h / 6.0f + 1.0f, 1.0f);
      h += f;
      h -= std::floor(h);  // torch's remainder: into [0, 1)
      const float h6 = h * 6.0f, sector = std::floor(h6), frac = h6 - sector;
      const int k = h6 >= 0.0f && h6 < 6.0f ? static_cast<int>(sector) : 0;  // NaN pixels: 0
      const float p = std::fmin(std::fmax(maxc * (1 - s), 0.0f), 1.0f);
      const float q = std::fmin(std::fmax(maxc * (1 - s * frac), 0.0f), 1.0f);
      const float t = std::fmin(std::fmax(maxc * (1 - s * (1 - frac)), 0.0f), 1.0f);
      float R2, G2, B2;
      switch (k) {
        case 0: R2 = maxc, G2 = t, B2 = p; break;
        case 1: R2 = q, G2 = maxc, B2 = p; break;
        case 2: R2 = p, G2 = maxc, B2 = t; break;
        case 3: R2 = p, G2 = q, B2 = maxc; break;
        case 4: R2 = t, G2 = p, B2 = maxc; break;
        default: R2 = maxc, G2 = p, B2 = q; break;
      }
      // uint8: torchvision's float -> uint8 conversion multiplies by 255.999 and truncates.
      const float back = truncate ? 255.999f : 1.0f;
      r[i] = truncate ? std::floor(R2 * back) : R2;
      g[i] = truncate ? std::floor(G2 * back) : G2;
      b[i] = truncate ? std::floor(B2 * back) : B2;
    }
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
    for (int64_t i = 0; i < size; ++i) buffer[i] = static_cast<float>(x[n * size + i]);
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
    for (int64_t i = 0; i < size; ++i) y[n * size + i] = static_cast<T>(buffer[i]);
  });
}

template void augment_color_jitter<uint8_t>(const uint8_t*, uint8_t*, const ImageBatch&,
                                            const float*, const int8_t*);
template void augment_color_jitter<float>(const float*, float*, const ImageBatch&, const float*,
                                          const int8_t*);

}  // namespace kiln
