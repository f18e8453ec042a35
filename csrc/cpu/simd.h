// The float vector that kiln's hand-tiled kernels (gemm_tile's micro-kernel, the
// depthwise rows) are written in, for the instruction set this build targets:
//
//   AVX-512F        Vec = __m512, kLanes = 16, Mask = a 16-bit lane mask
//   AVX2 and FMA    Vec = __m256, kLanes = 8,  Mask = a vector of lane masks
//   anything else   kFloatVec = false: callers keep their plain loop nests
//
// A kernel written once against these few operations runs with whole registers
// on either machine (a CPU without AVX-512 is as common as one with it), so no
// machine falls back to the slow paths just because it lacks the widest vectors.
//
//   first(n)           lanes 0 .. n-1 of a vector (0 <= n <= kLanes)
//   load(p, m)         those lanes from p, the rest zero; nothing read past them
//   store(p, v, m)     those lanes of v to p; nothing written past them
//   sum_lanes(v)       v[0] + v[1] + ... in lane order (a fixed rounding)
//   fmadd(a, b, c)     a * b + c;  fnmadd(a, b, c)  c - a * b  (one rounding each)
#pragma once

#include <cstdint>

// 1 where this build has a float vector: for #if around code that uses Vec.
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define KILN_FLOAT_VEC 1
#include <immintrin.h>
#else
#define KILN_FLOAT_VEC 0
#endif

namespace kiln::cpu::simd {

#if defined(__AVX512F__)

inline constexpr bool kFloatVec = true;
inline constexpr int kLanes = 16;
using Vec = __m512;
struct Mask {
  __mmask16 bits;
};

inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec broadcast(float v) { return _mm512_set1_ps(v); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a, b, c); }
inline Mask first(int64_t n) {
  return {n >= kLanes ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1)};
}
inline Vec load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m.bits, p); }
inline void store(float* p, Vec v, Mask m) { _mm512_mask_storeu_ps(p, m.bits, v); }

#elif defined(__AVX2__) && defined(__FMA__)

inline constexpr bool kFloatVec = true;
inline constexpr int kLanes = 8;
using Vec = __m256;
struct Mask {
  __m256i lanes;  // all ones in the lanes to touch
};

inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec broadcast(float v) { return _mm256_set1_ps(v); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a, b, c); }
inline Mask first(int64_t n) {
  // A sliding window over eight -1s then eight 0s.
  alignas(32) static const int32_t kWindow[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                  0,  0,  0,  0,  0,  0,  0,  0};
  const int64_t k = n >= kLanes ? kLanes : n <= 0 ? 0 : n;
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kWindow + kLanes - k))};
}
inline Vec load(const float* p, Mask m) { return _mm256_maskload_ps(p, m.lanes); }
inline void store(float* p, Vec v, Mask m) { _mm256_maskstore_ps(p, m.lanes, v); }

#else

inline constexpr bool kFloatVec = false;
inline constexpr int kLanes = 1;

#endif

#if KILN_FLOAT_VEC
inline float sum_lanes(Vec v) {
  alignas(64) float lanes[kLanes];
  store(lanes, v);
  float total = 0.0f;
  for (float x : lanes) total += x;
  return total;
}
#endif

}  // namespace kiln::cpu::simd
