// Batched image augmentation on NCHW batches of uint8 or float32 pixels.
//
// Kernels take per-image parameters that were already drawn: Python turns a
// table of Philox uniforms (augment_uniform: row n is keyed by (seed, offset,
// image n)) into flip flags, crop boxes, affine matrices, jitter factors. A
// kernel is then a pure function of its arguments, parallel over the batch,
// and its result never depends on the thread count. Augmentation is not
// differentiated: there are no backward kernels.
//
// Value range: uint8 pixels are 0..255; float32 pixels are taken to lie in
// [0, 1] where a kernel clamps (color jitter), as torchvision does. uint8
// results round to nearest and saturate unless a line says otherwise.
//
//   augment_uniform  u[n, k] = word k%4 of philox4x32(seed, offset + n*ceil(K/4) + k/4) / 2^32
//   flip             y[n,c,i,j] = x[n,c, fv_n ? H-1-i : i, fh_n ? W-1-j : j]
//   crop             y[n,c,i,j] = pad(x)[n,c, top_n+i, left_n+j]
//                    pad: constant fill[c] | reflect (numpy/PyTorch 'reflect', repeated) | edge
//   resized_crop     box_n = (top, left, h, w) inside the image, resampled to (out_h, out_w),
//                    separable, PIL's filter: y[i] = sum_k tri((k + 0.5 - ctr_i) / s) x[k] / norm,
//                    ctr_i = (i + 0.5) * h/out_h, s = max(h/out_h, 1) if antialias else 1
//   affine           (xs, ys) = theta_n (j, i, 1)^T in pixel-index coordinates (output -> input);
//                    y = bilinear(x, xs, ys), pixels outside the image read fill[c]
//   color_jitter     per image, ops in order_n (-1 = none), clamped to [0, bound] after each:
//                      brightness  x <- f x
//                      contrast    x <- f x + (1-f) mean(gray(x))
//                      saturation  x <- f x + (1-f) gray(x)      gray = .2989 r + .587 g + .114 b
//                      hue         h <- (h + f) mod 1  in HSV
//                    uint8 truncates after each op (torchvision's tensor semantics)
//   channel_affine   y[n,c] = x[n,c] * scale[n?,c] + offset[n?,c]   (Normalize, ToFloat, PCA)
//   box_fill         y = x, then y[n, :, box_n] = value[c] | N(0,1) draws | x[partner_n, :, box_n]
//   blend_pairs      y[n] = lam_n x[n] + (1 - lam_n) x[partner_n]     (MixUp)
#pragma once

#include <cstdint>

#include "common/hd.h"

namespace kiln {

// An NCHW batch: n >= 0 images of c >= 1 channels, h x w >= 1 pixels.
struct ImageBatch {
  int64_t n, c, h, w;
  KILN_HD int64_t plane() const { return h * w; }
  KILN_HD int64_t image() const { return c * h * w; }
};

// Throws ValueError naming `op` unless the batch's sizes are valid.
void check_image_batch(const char* op, const ImageBatch& b);

// An output size (crop, resize) of at least 1x1; `what`: "a crop size", "an output size".
void check_out_size(const char* op, const char* what, int64_t out_h, int64_t out_w);

// Each kernel's checks of its sizes and per-image parameter tables (host memory),
// shared by the CPU kernels and their CUDA twins (cuda/augment.h), which make them
// before anything is copied or launched: ValueError naming the kernel.
void check_crop(const ImageBatch& b, int64_t out_h, int64_t out_w);
// boxes: n rows of (top, left, height, width), each non-empty and inside the image.
void check_resized_crop(const ImageBatch& b, const int64_t* boxes, int64_t out_h, int64_t out_w);
// theta: n finite matrices of 6.
void check_affine(const ImageBatch& b, const double* theta);
// 1 or 3 channels, ops in -1..3 and finite factors (n rows of 4 each).
void check_color_jitter(const ImageBatch& b, const float* factors, const int8_t* order);
// partner[n] in [0, N).
void check_blend_pairs(const ImageBatch& b, const int64_t* partner);

// ValueError unless the uniform table's n, k >= 0.
void check_uniform_table(int64_t n, int64_t k);
// Philox counters a uniform table of n rows and k columns consumes.
inline int64_t augment_uniform_counters(int64_t n, int64_t k) { return n * ((k + 3) / 4); }
// out[n * k + j] in [0, 1), 32 random bits each.
void augment_uniform(double* out, int64_t n, int64_t k, uint64_t seed, uint64_t offset);

template <typename T>
void augment_flip(const T* x, T* y, const ImageBatch& b, const uint8_t* horizontal,
                  const uint8_t* vertical);

enum class PadMode { kConstant, kReflect, kEdge };

// top/left: per image, in the unpadded image's coordinates (negative = inside the padding).
// fill: c values (used by kConstant).
template <typename T>
void augment_crop(const T* x, T* y, const ImageBatch& b, int64_t out_h, int64_t out_w,
                  const int64_t* top, const int64_t* left, PadMode mode, const float* fill);

// boxes: n rows of (top, left, height, width), each inside the image.
template <typename T>
void augment_resized_crop(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                          int64_t out_h, int64_t out_w, bool antialias);

// theta: n rows of 6 (output pixel (j, i) -> input (xs, ys)); output has x's size.
template <typename T>
void augment_affine(const T* x, T* y, const ImageBatch& b, const double* theta,
                    const float* fill);

enum JitterOp : int8_t { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

// factors: n rows of (brightness, contrast, saturation, hue); order: n rows of 4 ops (-1 = none).
// c must be 1 or 3 (saturation and hue leave 1-channel images unchanged).
template <typename T>
void augment_color_jitter(const T* x, T* y, const ImageBatch& b, const float* factors,
                          const int8_t* order);

// scale, offset: c values, or n*c when per_image.
template <typename In, typename Out>
void augment_channel_affine(const In* x, Out* y, const ImageBatch& b, const float* scale,
                            const float* offset, bool per_image);

enum class BoxSource { kValue, kNormal, kPartner };

// box_fill's checks: the batch, the boxes (inside the image, empty ones allowed), the
// partners (kPartner), float images (kNormal).
void check_box_fill(const ImageBatch& b, const int64_t* boxes, BoxSource source,
                    const int64_t* partner, bool float_images);

// Philox counters box_fill with kNormal consumes: one normal per element of an image.
inline int64_t augment_normal_counters(const ImageBatch& b) { return b.n * ((b.image() + 1) / 2); }

// boxes: n rows of (top, left, height, width) inside the image (height or width 0: untouched).
// kValue reads value[c]; kNormal draws N(0, 1) from Philox(seed, offset + n * ceil(C*H*W/2))
// (float only); kPartner copies image partner[n]'s box.
template <typename T>
void augment_box_fill(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                      BoxSource source, const float* value, uint64_t seed, uint64_t offset,
                      const int64_t* partner);

template <typename T>
void augment_blend_pairs(const T* x, T* y, const ImageBatch& b, const int64_t* partner,
                         const float* lam);

}  // namespace kiln
