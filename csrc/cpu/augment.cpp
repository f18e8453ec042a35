// Augmentation kernels that are neither geometry nor color: the uniform table
// every random transform draws from, per-channel affine maps (Normalize,
// ToFloat, PCA lighting), box fills (erasing, cutout, CutMix) and pair blends
// (MixUp). Formulas: augment.h.
#include "cpu/augment.h"

#include <algorithm>
#include <cstring>

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

void augment_uniform(double* out, int64_t n, int64_t k, uint64_t seed, uint64_t offset) {
  if (n < 0 || k < 0) fail("augment_uniform: expected n, k >= 0, got n=", n, ", k=", k);
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

namespace {

void check_box(const char* op, const ImageBatch& b, int64_t n, const int64_t* box) {
  const int64_t top = box[0], left = box[1], h = box[2], w = box[3];
  if (h < 0 || w < 0 || top < 0 || left < 0 || top + h > b.h || left + w > b.w)
    fail(op, ": box ", n, " (top=", top, ", left=", left, ", height=", h, ", width=", w,
         ") does not lie inside the ", b.h, "x", b.w, " image");
}

void check_partners(const char* op, const ImageBatch& b, const int64_t* partner) {
  for (int64_t n = 0; n < b.n; ++n)
    if (partner[n] < 0 || partner[n] >= b.n)
      fail(op, ": partner[", n, "] = ", partner[n], " is not an image index in [0, ", b.n, ")");
}

}  // namespace

template <typename T>
void augment_box_fill(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                      BoxSource source, const float* value, uint64_t seed, uint64_t offset,
                      const int64_t* partner) {
  const char* op = "augment_box_fill";
  check_image_batch(op, b);
  for (int64_t n = 0; n < b.n; ++n) check_box(op, b, n, boxes + 4 * n);
  if (source == BoxSource::kPartner) check_partners(op, b, partner);
  if (source == BoxSource::kNormal && !std::is_same_v<T, float>)
    fail(op, ": normal-distributed fill needs float32 images");
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
  const char* op = "augment_blend_pairs";
  check_image_batch(op, b);
  check_partners(op, b, partner);
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
