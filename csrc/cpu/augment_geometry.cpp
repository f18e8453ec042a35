// Geometric augmentation kernels: flips, crops with padding, antialiased
// bilinear resampling of a box (Resize, RandomResizedCrop) and affine warps
// with bilinear sampling. Formulas: augment.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "cpu/augment.h"
#include "cpu/augment_detail.h"

namespace kiln {

using augment_detail::for_each_image;
using augment_detail::bilinear_sample;
using augment_detail::pad_index;
using augment_detail::Taps;
using augment_detail::to_pixel;

template <typename T>
void augment_flip(const T* x, T* y, const ImageBatch& b, const uint8_t* horizontal,
                  const uint8_t* vertical) {
  check_image_batch("augment_flip", b);
  const int64_t hw = b.plane(), w = b.w;
  for_each_image(b, [&](int64_t n) {
    const bool fh = horizontal && horizontal[n], fv = vertical && vertical[n];
    for (int64_t c = 0; c < b.c; ++c) {
      const T* src = x + (n * b.c + c) * hw;
      T* dst = y + (n * b.c + c) * hw;
      for (int64_t i = 0; i < b.h; ++i) {
        // Locals with __restrict: a uint8 store could alias the captured sizes.
        const int64_t width = w;
        const T* __restrict s = src + (fv ? b.h - 1 - i : i) * width;
        T* __restrict d = dst + i * width;
        if (fh)
          for (int64_t j = 0; j < width; ++j) d[j] = s[width - 1 - j];
        else
          std::memcpy(d, s, sizeof(T) * width);
      }
    }
  });
}

template <typename T>
void augment_crop(const T* x, T* y, const ImageBatch& b, int64_t out_h, int64_t out_w,
                  const int64_t* top, const int64_t* left, PadMode mode, const float* fill) {
  check_crop(b, out_h, out_w);
  const int64_t hw = b.plane(), out_hw = out_h * out_w;
  for_each_image(b, [&](int64_t n) {
    const int64_t t = top[n], l = left[n];
    // Columns [j0, j1) of the output read the image directly; the rest go through pad_index.
    const int64_t j0 = std::clamp<int64_t>(-l, 0, out_w), j1 = std::clamp<int64_t>(b.w - l, j0, out_w);
    for (int64_t c = 0; c < b.c; ++c) {
      const T* src = x + (n * b.c + c) * hw;
      T* dst = y + (n * b.c + c) * out_hw;
      const T pad = to_pixel<T>(fill[c]);
      for (int64_t i = 0; i < out_h; ++i) {
        T* d = dst + i * out_w;
        const int64_t r = pad_index(t + i, b.h, mode);
        if (r < 0) {
          std::fill(d, d + out_w, pad);
          continue;
        }
        const T* s = src + r * b.w;
        for (int64_t j = 0; j < j0; ++j) {
          const int64_t q = pad_index(l + j, b.w, mode);
          d[j] = q < 0 ? pad : s[q];
        }
        if (j1 > j0) std::memcpy(d + j0, s + l + j0, sizeof(T) * (j1 - j0));
        for (int64_t j = j1; j < out_w; ++j) {
          const int64_t q = pad_index(l + j, b.w, mode);
          d[j] = q < 0 ? pad : s[q];
        }
      }
    }
  });
}

template <typename T>
void augment_resized_crop(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                          int64_t out_h, int64_t out_w, bool antialias) {
  check_resized_crop(b, boxes, out_h, out_w);
  const int64_t hw = b.plane(), out_hw = out_h * out_w;
  for_each_image(b, [&](int64_t n) {
    const int64_t top = boxes[4 * n], left = boxes[4 * n + 1], bh = boxes[4 * n + 2],
                  bw = boxes[4 * n + 3];
    const Taps horizontal(bw, out_w, antialias), vertical(bh, out_h, antialias);
    std::vector<float> rows(bh * out_w), out(out_w);
    for (int64_t c = 0; c < b.c; ++c) {
      const T* src = x + (n * b.c + c) * hw + top * b.w + left;
      for (int64_t i = 0; i < bh; ++i) {
        const T* s = src + i * b.w;
        float* r = rows.data() + i * out_w;
        for (int64_t j = 0; j < out_w; ++j) {
          const float* wt = horizontal.weight.data() + j * horizontal.stride;
          const T* p = s + horizontal.first[j];
          float acc = 0;
          for (int64_t k = 0; k < horizontal.count[j]; ++k) acc += wt[k] * static_cast<float>(p[k]);
          r[j] = acc;
        }
      }
      T* dst = y + (n * b.c + c) * out_hw;
      for (int64_t i = 0; i < out_h; ++i) {
        const float* wt = vertical.weight.data() + i * vertical.stride;
        std::fill(out.begin(), out.end(), 0.0f);
        for (int64_t k = 0; k < vertical.count[i]; ++k) {
          const float* r = rows.data() + (vertical.first[i] + k) * out_w;
          for (int64_t j = 0; j < out_w; ++j) out[j] += wt[k] * r[j];
        }
        for (int64_t j = 0; j < out_w; ++j) dst[i * out_w + j] = to_pixel<T>(out[j]);
      }
    }
  });
}

template <typename T>
void augment_affine(const T* x, T* y, const ImageBatch& b, const double* theta,
                    const float* fill) {
  check_affine(b, theta);
  const int64_t hw = b.plane();
  for_each_image(b, [&](int64_t n) {
    const double* m = theta + 6 * n;
    for (int64_t c = 0; c < b.c; ++c) {
      const T* src = x + (n * b.c + c) * hw;
      T* dst = y + (n * b.c + c) * hw;
      const float pad = fill[c];
      for (int64_t i = 0; i < b.h; ++i) {
        const double row_x = m[1] * i + m[2], row_y = m[4] * i + m[5];
        for (int64_t j = 0; j < b.w; ++j) {
          const double xs = m[0] * j + row_x, ys = m[3] * j + row_y;
          dst[i * b.w + j] = to_pixel<T>(bilinear_sample(src, b.h, b.w, xs, ys, pad));
        }
      }
    }
  });
}

#define KILN_AUGMENT_GEOMETRY(T)                                                                  \
  template void augment_flip<T>(const T*, T*, const ImageBatch&, const uint8_t*, const uint8_t*);  \
  template void augment_crop<T>(const T*, T*, const ImageBatch&, int64_t, int64_t, const int64_t*, \
                                const int64_t*, PadMode, const float*);                           \
  template void augment_resized_crop<T>(const T*, T*, const ImageBatch&, const int64_t*, int64_t,  \
                                        int64_t, bool);                                           \
  template void augment_affine<T>(const T*, T*, const ImageBatch&, const double*, const float*);
KILN_AUGMENT_GEOMETRY(uint8_t)
KILN_AUGMENT_GEOMETRY(float)
#undef KILN_AUGMENT_GEOMETRY

}  // namespace kiln
