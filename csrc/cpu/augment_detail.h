// Pieces shared by the augmentation kernel files (augment*.cpp): the per-image
// parallel loop and the conversion of a computed value back to a pixel.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/parallel.h"
#include "cpu/augment.h"

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

// A computed value as a pixel: uint8 rounds half up and saturates (NaN -> 0),
// float passes through. Selects, not branches, so pixel loops vectorize.
template <typename T>
inline T to_pixel(float v) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    v = v > 0.0f ? v : 0.0f;
    v = v < 255.0f ? v : 255.0f;
    return static_cast<uint8_t>(static_cast<int32_t>(v + 0.5f));
  } else {
    return v;
  }
}

// Pad-mode index map of p into [0, size): -1 where a constant pad applies.
inline int64_t pad_index(int64_t p, int64_t size, PadMode mode) {
  if (p >= 0 && p < size) return p;
  switch (mode) {
    case PadMode::kConstant:
      return -1;
    case PadMode::kEdge:
      return p < 0 ? 0 : size - 1;
    case PadMode::kReflect: {
      if (size == 1) return 0;
      const int64_t period = 2 * (size - 1);
      int64_t q = p % period;
      if (q < 0) q += period;
      return q < size ? q : period - q;
    }
  }
  return -1;
}

}  // namespace kiln::augment_detail
