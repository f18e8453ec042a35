// Pieces shared by the augmentation kernel files (augment*.cpp): the per-image
// parallel loop, resized_crop's resampling weights (also computed on the host for
// the CUDA twin), and the per-pixel math they share with the CUDA kernels
// (augment_pixel.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "cpu/augment.h"
#include "cpu/augment_pixel.h"

namespace kiln::augment_detail {

// Calls fn(n) for every image, images spread over the pool. A chunk holds at
// least ~32K pixels so that small images do not pay a wake-up each.
template <typename Fn>
void for_each_image(const ImageBatch& b, Fn&& fn) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, b.image()));
  parallel_for(0, b.n, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) fn(n);
  });
}

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

}  // namespace kiln::augment_detail
