// Inverted dropout with masks from the counter-based Philox generator.
// The mask has `groups` entries, each covering `inner` consecutive elements:
// inner = 1 is dropout; inner = H*W over (N, C, H, W) is dropout2d (whole
// channels). Entry g draws lane g%4 of Philox(seed, offset + g/4), so a mask is
// a pure function of (seed, offset) whatever the thread count.
//
//   forward                                        backward
//   keep_g = uniform(g) >= p       (P = 1 - p)
//   y = x * keep_g / (1 - p)                       dx = dy * keep_g / (1 - p)
//
// p = 1 drops everything (scale 0, not 1/0); p = 0 keeps everything.
#pragma once

#include <cstdint>

namespace kiln {

// Philox counters one call consumes for a mask of `groups` entries.
inline int64_t dropout_counters(int64_t groups) { return (groups + 3) / 4; }

// Throws ValueError unless 0 <= p <= 1.
void check_dropout_p(const char* op, double p);

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t groups, int64_t inner, double p,
                     uint64_t seed, uint64_t offset);

template <typename T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t groups, int64_t inner,
                      double p);

}  // namespace kiln
