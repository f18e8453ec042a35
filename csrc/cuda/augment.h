// Batched image augmentation on the GPU: the twins of cpu/augment.h (same names,
// arguments and formulas; the formulas are there), one thread per output element,
// with the per-pixel math of cpu/augment_pixel.h and the same Philox counters, so
// a batch augmented here equals the CPU's up to the float rounding of the
// interpolation and color arithmetic.
//
// Memory: the images (x, y; augment_uniform's out) are device memory. The per-image
// parameter tables (flags, top/left, boxes, theta, fill, factors, order, scale,
// offset, value, partner, lam) are HOST memory, as the CPU kernels take them: each
// twin checks them with the CPU kernel's checks (cpu/augment.h) before anything is
// launched, then copies them to the device on the current device's stream, where the
// kernels run.
//
// color_jitter runs one block per image (contrast needs the image's mean gray, a
// block sum between the ops); every other kernel one thread per output element.
#pragma once

#include <cstdint>

#include "cpu/augment.h"

namespace kiln::cuda {

using kiln::BoxSource;
using kiln::ImageBatch;
using kiln::PadMode;

void augment_uniform(double* out, int64_t n, int64_t k, uint64_t seed, uint64_t offset);

template <typename T>
void augment_flip(const T* x, T* y, const ImageBatch& b, const uint8_t* horizontal,
                  const uint8_t* vertical);

template <typename T>
void augment_crop(const T* x, T* y, const ImageBatch& b, int64_t out_h, int64_t out_w,
                  const int64_t* top, const int64_t* left, PadMode mode, const float* fill);

template <typename T>
void augment_resized_crop(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                          int64_t out_h, int64_t out_w, bool antialias);

template <typename T>
void augment_affine(const T* x, T* y, const ImageBatch& b, const double* theta,
                    const float* fill);

template <typename T>
void augment_color_jitter(const T* x, T* y, const ImageBatch& b, const float* factors,
                          const int8_t* order);

template <typename In, typename Out>
void augment_channel_affine(const In* x, Out* y, const ImageBatch& b, const float* scale,
                            const float* offset, bool per_image);

template <typename T>
void augment_box_fill(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                      BoxSource source, const float* value, uint64_t seed, uint64_t offset,
                      const int64_t* partner);

template <typename T>
void augment_blend_pairs(const T* x, T* y, const ImageBatch& b, const int64_t* partner,
                         const float* lam);

}  // namespace kiln::cuda
