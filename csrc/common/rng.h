// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011).
// A draw is a pure function of (seed, counter): element i of a dropout mask or
// image i of an augmented batch gets the same numbers whatever the thread count,
// schedule or device (philox4x32 is compiled for the GPU too). Python keeps
// (seed, offset) and advances offset by the number of counters each call consumed.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "common/hd.h"

namespace kiln {

KILN_HD inline std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

// Uniform in [0, 1) with 24 random bits.
KILN_HD inline float uniform01(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// A stream of draws for one (seed, counter) origin: 4 numbers per counter.
class Philox {
 public:
  Philox(uint64_t seed, uint64_t counter) : seed_(seed), counter_(counter) {}
  uint32_t next_u32() {
    if (used_ == 4) {
      block_ = philox4x32(seed_, counter_++);
      used_ = 0;
    }
    return block_[used_++];
  }
  float uniform() { return uniform01(next_u32()); }
  // Standard normal by Box-Muller.
  float normal() {
    const float u1 = 1.0f - uniform(), u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795865f * u2);
  }

 private:
  uint64_t seed_, counter_;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

}  // namespace kiln
