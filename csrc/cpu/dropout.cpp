#include "cpu/dropout.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/parallel.h"
#include "common/rng.h"

namespace kiln {
namespace {

// Counters per batch: Philox for 64 counters at once, written lane-parallel
// (struct of arrays) so the ten rounds vectorize; one counter at a time costs
// ten times more than the memory traffic of the mask it produces. (At 16 the
// compiler unrolls the lane loop fully and no longer vectorizes it.)
constexpr int kBatch = 64;

// bits[j][l] = word j of philox4x32(seed, first + l): the same function as
// common/rng.h's philox4x32, evaluated for kBatch counters.
void philox_batch(uint64_t seed, uint64_t first, uint32_t bits[4][kBatch]) {
  uint32_t c0[kBatch], c1[kBatch], c2[kBatch], c3[kBatch];
  for (int l = 0; l < kBatch; ++l) {
    const uint64_t counter = first + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(counter);
    c1[l] = static_cast<uint32_t>(counter >> 32);
    c2[l] = c3[l] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kBatch; ++l) {
      const uint64_t p0 = uint64_t{c0[l]} * 0xD2511F53u;
      const uint64_t p1 = uint64_t{c2[l]} * 0xCD9E8D57u;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<uint32_t>(p1);
      c3[l] = static_cast<uint32_t>(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < kBatch; ++l) {
    bits[0][l] = c0[l];
    bits[1][l] = c1[l];
    bits[2][l] = c2[l];
    bits[3][l] = c3[l];
  }
}

template <typename T>
T keep_scale(double p) {
  return p < 1 ? T(1.0 / (1.0 - p)) : T(0);
}

// out = in * mask * scale over groups [g0, g1), each covering `inner` elements.
// A multiply (not a select) so NaN and inf propagate as in x * mask.
template <typename T>
void apply_mask(const T* in, T* out, const uint8_t* mask, int64_t g0, int64_t g1, int64_t inner,
                T scale) {
  if (inner == 1) {
    for (int64_t g = g0; g < g1; ++g) out[g] = in[g] * (mask[g] ? scale : T(0));
    return;
  }
  for (int64_t g = g0; g < g1; ++g) {
    const T factor = mask[g] ? scale : T(0);
    for (int64_t i = g * inner; i < (g + 1) * inner; ++i) out[i] = in[i] * factor;
  }
}

// Groups per parallel chunk, so that a chunk covers enough elements to be worth a worker.
int64_t group_grain(int64_t inner) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, inner));
}

}  // namespace

void check_dropout_p(const char* op, double p) {
  if (!(p >= 0 && p <= 1)) fail(op, ": dropout probability has to be between 0 and 1, but got ", p);
}

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t groups, int64_t inner, double p,
                     uint64_t seed, uint64_t offset) {
  check_dropout_p("dropout", p);
  const T scale = keep_scale<T>(p);
  // keep <=> uniform01(bits) = (bits >> 8) / 2^24 >= p <=> (bits >> 8) >= ceil(p * 2^24),
  // exactly (both sides are integers scaled by 2^24).
  const uint32_t threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  constexpr int64_t kGroups = 4 * kBatch;  // mask entries per Philox batch
  const int64_t batches = (groups + kGroups - 1) / kGroups;
  const int64_t grain = std::max<int64_t>(1, group_grain(inner) / kGroups);
  parallel_for(0, batches, grain, [&](int64_t b0, int64_t b1) {
    uint32_t bits[4][kBatch];
    for (int64_t b = b0; b < b1; ++b) {
      philox_batch(seed, offset + static_cast<uint64_t>(b * kBatch), bits);
      const int64_t g0 = b * kGroups, g1 = std::min(groups, g0 + kGroups);
      uint8_t* m = mask + g0;  // entry g0 + 4l + j: counter offset + b*kBatch + l, word j
      if (g1 - g0 == kGroups) {
        for (int l = 0; l < kBatch; ++l)
          for (int j = 0; j < 4; ++j) m[4 * l + j] = (bits[j][l] >> 8) >= threshold;
      } else {
        for (int64_t k = 0; k < g1 - g0; ++k) m[k] = (bits[k % 4][k / 4] >> 8) >= threshold;
      }
      apply_mask(x, y, mask, g0, g1, inner, scale);
    }
  });
}

template <typename T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t groups, int64_t inner,
                      double p) {
  check_dropout_p("dropout_backward", p);
  const T scale = keep_scale<T>(p);
  parallel_for(0, groups, group_grain(inner), [&](int64_t g0, int64_t g1) {
    apply_mask(dy, dx, mask, g0, g1, inner, scale);
  });
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, int64_t, double,
                                     uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, int64_t, double,
                                      uint64_t, uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, int64_t,
                                      double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, int64_t,
                                       double);

}  // namespace kiln
