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

// A standard normal by Box-Muller from two draws: u1 = 1 - uniform(a), u2 = uniform(b).
KILN_HD inline float normal_from(uint32_t a, uint32_t b) {
  const float u1 = 1.0f - uniform01(a), u2 = uniform01(b);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795865f * u2);
}

// Normal k of the stream Philox(seed, first) draws by Philox::normal (2 words each,
// 2 normals per counter), computed directly: what a GPU thread per element needs.
KILN_HD inline float philox_normal(uint64_t seed, uint64_t first, uint64_t k) {
  const auto bits = philox4x32(seed, first + k / 2);
  const int word = 2 * static_cast<int>(k % 2);
  return normal_from(bits[word], bits[word + 1]);
}

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
    const uint32_t a = next_u32();
    return normal_from(a, next_u32());
  }

 private:
  uint64_t seed_, counter_;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

}  // namespace kiln
