// Augmentation kernels that are neither geometry nor color: the checks of the
// per-image parameters (shared with the CUDA twins), the uniform table every
// random transform draws from, per-channel affine maps (Normalize,
// ToFloat, PCA lighting), box fills (erasing, cutout, CutMix) and pair blends
// (MixUp). Formulas: augment.h.
#include "cpu/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/check.h"
#include "common/rng.h"
#include "cpu/augment_detail.h"

namespace kiln {

using augment_detail::for_each_image;
using augment_detail::to_pixel;

void check_image_batch(const char* op, const ImageBatch& b) {
  if (b.n < 0 || b.c < 1 || b.h < 1 || b.w < 1)
    fail(op, ": expected images of shape (N, C, H, W) with N >= 0 and C, H, W >= 1, got ",
         shape_str({b.n, b.c, b.h, b.w}));
}

void check_uniform_table(int64_t n, int64_t k) {
  if (n < 0 || k < 0) fail("augment_uniform: expected n, k >= 0, got n=", n, ", k=", k);
}

void augment_uniform(double* out, int64_t n, int64_t k, uint64_t seed, uint64_t offset) {
  check_uniform_table(n, k);
  const int64_t per_row = (k + 3) / 4;
  parallel_for(0, n, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, k)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const uint64_t first = offset + static_cast<uint64_t>(r * per_row);
                   for (int64_t j = 0; j < k; ++j) {
                     const uint32_t bits = philox4x32(seed, first + static_cast<uint64_t>(j / 4))[j % 4];
                     out[r * k + j] = bits * (1.0 / 4294967296.0);
                   }
                 }
               });
}

template <typename In, typename Out>
void augment_channel_affine(const In* x, Out* y, const ImageBatch& b, const float* scale,
                            const float* offset, bool per_image) {
  check_image_batch("augment_channel_affine", b);
  const int64_t hw = b.plane();
  for_each_image(b, [&](int64_t n) {
    for (int64_t c = 0; c < b.c; ++c) {
      const int64_t k = per_image ? n * b.c + c : c;
      const float s = scale[k], o = offset[k];
      const int64_t count = hw;  // locals: a uint8 store could alias the captured ones
      const In* __restrict src = x + (n * b.c + c) * hw;
      Out* __restrict dst = y + (n * b.c + c) * hw;
      for (int64_t i = 0; i < count; ++i)
        dst[i] = to_pixel<Out>(static_cast<float>(src[i]) * s + o);
    }
  });
}

void check_out_size(const char* op, const char* what, int64_t out_h, int64_t out_w) {
  if (out_h < 1 || out_w < 1) fail(op, ": expected ", what, " >= 1, got ", out_h, "x", out_w);
}

namespace {

// n rows of (top, left, height, width) inside the image; empty boxes allowed unless nonempty.
void check_boxes(const char* op, const ImageBatch& b, const int64_t* boxes, bool nonempty) {
  for (int64_t n = 0; n < b.n; ++n) {
    const int64_t* box = boxes + 4 * n;
    const int64_t top = box[0], left = box[1], h = box[2], w = box[3], least = nonempty;
    if (h < least || w < least || top < 0 || left < 0 || top + h > b.h || left + w > b.w)
      fail(op, ": box ", n, " (top=", top, ", left=", left, ", height=", h, ", width=", w,
           nonempty ? ") is not a non-empty box inside the " : ") does not lie inside the ",
           b.h, "x", b.w, " image");
  }
}

void check_partners(const char* op, const ImageBatch& b, const int64_t* partner) {
  for (int64_t n = 0; n < b.n; ++n)
    if (partner[n] < 0 || partner[n] >= b.n)
      fail(op, ": partner[", n, "] = ", partner[n], " is not an image index in [0, ", b.n, ")");
}

}  // namespace

void check_crop(const ImageBatch& b, int64_t out_h, int64_t out_w) {
  const char* op = "augment_crop";
  check_image_batch(op, b);
  check_out_size(op, "a crop size", out_h, out_w);
}

void check_resized_crop(const ImageBatch& b, const int64_t* boxes, int64_t out_h, int64_t out_w) {
  const char* op = "augment_resized_crop";
  check_image_batch(op, b);
  check_out_size(op, "an output size", out_h, out_w);
  check_boxes(op, b, boxes, true);
}

void check_affine(const ImageBatch& b, const double* theta) {
  const char* op = "augment_affine";
  check_image_batch(op, b);
  for (int64_t k = 0; k < 6 * b.n; ++k)
    if (!std::isfinite(theta[k]))
      fail(op, ": the matrix of image ", k / 6, " has a non-finite entry ", theta[k]);
}

void check_color_jitter(const ImageBatch& b, const float* factors, const int8_t* order) {
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
}

void check_box_fill(const ImageBatch& b, const int64_t* boxes, BoxSource source,
                    const int64_t* partner, bool float_images) {
  const char* op = "augment_box_fill";
  check_image_batch(op, b);
  check_boxes(op, b, boxes, false);
  if (source == BoxSource::kPartner) check_partners(op, b, partner);
  if (source == BoxSource::kNormal && !float_images)
    fail(op, ": normal-distributed fill needs float32 images");
}

void check_blend_pairs(const ImageBatch& b, const int64_t* partner) {
  const char* op = "augment_blend_pairs";
  check_image_batch(op, b);
  check_partners(op, b, partner);
}

template <typename T>
void augment_box_fill(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                      BoxSource source, const float* value, uint64_t seed, uint64_t offset,
                      const int64_t* partner) {
  check_box_fill(b, boxes, source, partner, std::is_same_v<T, float>);
  const int64_t hw = b.plane(), per_image = (b.image() + 1) / 2;
  for_each_image(b, [&](int64_t n) {
    const int64_t* box = boxes + 4 * n;
    const int64_t top = box[0], left = box[1], bh = box[2], bw = box[3];
    std::memcpy(y + n * b.image(), x + n * b.image(), sizeof(T) * b.image());
    Philox normal(seed, offset + static_cast<uint64_t>(n * per_image));
    for (int64_t c = 0; c < b.c; ++c) {
      T* dst = y + (n * b.c + c) * hw;
      for (int64_t i = top; i < top + bh; ++i) {
        T* row = dst + i * b.w + left;
        switch (source) {
          case BoxSource::kValue:
            std::fill(row, row + bw, to_pixel<T>(value[c]));
            break;
          case BoxSource::kNormal:
            for (int64_t j = 0; j < bw; ++j) row[j] = static_cast<T>(normal.normal());
            break;
          case BoxSource::kPartner:
            std::memcpy(row, x + (partner[n] * b.c + c) * hw + i * b.w + left, sizeof(T) * bw);
            break;
        }
      }
    }
  });
}

template <typename T>
void augment_blend_pairs(const T* x, T* y, const ImageBatch& b, const int64_t* partner,
                         const float* lam) {
  check_blend_pairs(b, partner);
  const int64_t size = b.image();
  for_each_image(b, [&](int64_t n) {
    const int64_t count = size;  // locals: a uint8 store could alias the captured ones
    const T* __restrict a = x + n * count;
    const T* __restrict p = x + partner[n] * count;
    const float l = lam[n], m = 1.0f - lam[n];
    T* __restrict dst = y + n * count;
    for (int64_t i = 0; i < count; ++i)
      dst[i] = to_pixel<T>(l * static_cast<float>(a[i]) + m * static_cast<float>(p[i]));
  });
}

#define KILN_AUGMENT_MISC(T)                                                                   \
  template void augment_box_fill<T>(const T*, T*, const ImageBatch&, const int64_t*, BoxSource, \
                                    const float*, uint64_t, uint64_t, const int64_t*);          \
  template void augment_blend_pairs<T>(const T*, T*, const ImageBatch&, const int64_t*,         \
                                       const float*);
KILN_AUGMENT_MISC(uint8_t)
KILN_AUGMENT_MISC(float)
#undef KILN_AUGMENT_MISC

template void augment_channel_affine<uint8_t, uint8_t>(const uint8_t*, uint8_t*, const ImageBatch&,
                                                       const float*, const float*, bool);
template void augment_channel_affine<uint8_t, float>(const uint8_t*, float*, const ImageBatch&,
                                                     const float*, const float*, bool);
template void augment_channel_affine<float, float>(const float*, float*, const ImageBatch&,
                                                   const float*, const float*, bool);

}  // namespace kiln
