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
using augment_detail::pad_index;
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
  const char* op = "augment_crop";
  check_image_batch(op, b);
  if (out_h < 1 || out_w < 1) fail(op, ": expected a crop size >= 1, got ", out_h, "x", out_w);
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

namespace {

// Resampling weights along one axis, PIL's precompute_coeffs with the bilinear
// (triangle) filter: output i reads inputs [first[i], first[i] + count[i]).
struct Taps {
  int64_t stride = 0;
  std::vector<int64_t> first, count;
  std::vector<float> weight;  // out_size rows of `stride`

  Taps(int64_t in_size, int64_t out_size, bool antialias)
      : first(out_size), count(out_size) {
    const double scale = static_cast<double>(in_size) / out_size;
    const double filter_scale = antialias ? std::max(scale, 1.0) : 1.0;
    const double support = filter_scale;  // the triangle's support is 1
    stride = static_cast<int64_t>(std::ceil(2 * support)) + 2;
    weight.assign(out_size * stride, 0.0f);
    std::vector<double> w(stride);
    for (int64_t i = 0; i < out_size; ++i) {
      const double center = (i + 0.5) * scale;
      // Truncation toward zero, as PIL's (int) casts.
      const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
      double total = 0;
      for (int64_t k = lo; k < hi; ++k) {
        const double t = std::abs((k - center + 0.5) / filter_scale);
        w[k - lo] = t < 1 ? 1 - t : 0;
        total += w[k - lo];
      }
      first[i] = lo;
      count[i] = hi - lo;
      for (int64_t k = 0; k < hi - lo; ++k)
        weight[i * stride + k] = static_cast<float>(total > 0 ? w[k] / total : 0);
    }
  }
};

}  // namespace

template <typename T>
void augment_resized_crop(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                          int64_t out_h, int64_t out_w, bool antialias) {
  const char* op = "augment_resized_crop";
  check_image_batch(op, b);
  if (out_h < 1 || out_w < 1) fail(op, ": expected an output size >= 1, got ", out_h, "x", out_w);
  for (int64_t n = 0; n < b.n; ++n) {
    const int64_t* box = boxes + 4 * n;
    if (box[2] < 1 || box[3] < 1 || box[0] < 0 || box[1] < 0 || box[0] + box[2] > b.h ||
        box[1] + box[3] > b.w)
      fail(op, ": box ", n, " (top=", box[0], ", left=", box[1], ", height=", box[2],
           ", width=", box[3], ") is not a non-empty box inside the ", b.h, "x", b.w, " image");
  }
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
  const char* op = "augment_affine";
  check_image_batch(op, b);
  for (int64_t k = 0; k < 6 * b.n; ++k)
    if (!std::isfinite(theta[k]))
      fail(op, ": the matrix of image ", k / 6, " has a non-finite entry ", theta[k]);
  const int64_t hw = b.plane();
  for_each_image(b, [&](int64_t n) {
    const double* m = theta + 6 * n;
    for (int64_t c = 0; c < b.c; ++c) {
      const T* src = x + (n * b.c + c) * hw;
      T* dst = y + (n * b.c + c) * hw;
      const float pad = fill[c];
      auto at = [&](int64_t r, int64_t q) {
        return r >= 0 && r < b.h && q >= 0 && q < b.w ? static_cast<float>(src[r * b.w + q]) : pad;
      };
      for (int64_t i = 0; i < b.h; ++i) {
        const double row_x = m[1] * i + m[2], row_y = m[4] * i + m[5];
        for (int64_t j = 0; j < b.w; ++j) {
          const double xs = m[0] * j + row_x, ys = m[3] * j + row_y;
          // Far outside the image (or beyond int64): every tap reads fill.
          if (!(xs > -2 && xs < b.w + 1 && ys > -2 && ys < b.h + 1)) {
            dst[i * b.w + j] = to_pixel<T>(pad);
            continue;
          }
          const double fx0 = std::floor(xs), fy0 = std::floor(ys);
          const int64_t x0 = static_cast<int64_t>(fx0), y0 = static_cast<int64_t>(fy0);
          const float ax = static_cast<float>(xs - fx0), ay = static_cast<float>(ys - fy0);
          const float top = (1 - ax) * at(y0, x0) + ax * at(y0, x0 + 1);
          const float bottom = (1 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1);
          dst[i * b.w + j] = to_pixel<T>((1 - ay) * top + ay * bottom);
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
