// Matrix transposes between pixel-major (channels-last) blocks and NCHW planes,
// for the convolutions' layout changes:
//
//   transpose(in, ldi, rows, cols, out, ldo):  out[j * ldo + i] = in[i * ldi + j]
//                                              for i < rows, j < cols
//
// float on AVX-512 moves 16 x 16 blocks through registers (transpose16x16);
// the edges, other types and other machines take the scalar loop.
#pragma once

#include <cstdint>
#include <type_traits>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kiln::cpu {

#ifdef __AVX512F__
// out rows j = in columns j for one 16 x 16 block (unpack, then 128-bit lane
// shuffles). The all-ones maskz forms only keep GCC 12 from a false
// "uninitialized" warning about the unmasked intrinsics.
inline void transpose16x16(const float* in, int64_t ldi, float* out, int64_t ldo) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * ldi);
  for (int i = 0; i < 16; i += 2) {  // t[i] = a0 b0 a1 b1 | a4 b4 a5 b5 | ...
    t[i] = _mm512_maskz_unpacklo_ps(0xFFFF, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[i], r[i + 1]);
  }
  auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(
        _mm512_maskz_unpacklo_pd(0xFF, _mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(
        _mm512_maskz_unpackhi_pd(0xFF, _mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int i = 0; i < 16; i += 4) {  // r[i + c] = column c of rows i..i+3, per 128-bit lane
    r[i] = lo(t[i], t[i + 2]);
    r[i + 1] = hi(t[i], t[i + 2]);
    r[i + 2] = lo(t[i + 1], t[i + 3]);
    r[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {  // lanes 0, 2 and 1, 3 of row groups 0 and 4, 8 and 12
    t[i] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    _mm512_storeu_ps(out + i * ldo, _mm512_maskz_shuffle_f32x4(0xFFFF, t[i], t[i + 8], 0x88));
    _mm512_storeu_ps(out + (i + 8) * ldo, _mm512_maskz_shuffle_f32x4(0xFFFF, t[i], t[i + 8], 0xdd));
  }
}
#endif

// out[j * ldo + i] = in[i * ldi + j] for i < rows, j < cols: between the
// pixel-major blocks of the direct convolution and NCHW.
template <typename T>
void transpose(const T* in, int64_t ldi, int64_t rows, int64_t cols, T* out, int64_t ldo) {
  int64_t i0 = 0, j0 = 0;
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    // Along each band of 16 out rows, so that out (often NCHW, rows 4 KiB apart)
    // fills whole cache lines in order.
    for (; j0 + 16 <= cols; j0 += 16)
      for (i0 = 0; i0 + 16 <= rows; i0 += 16)
        transpose16x16(in + i0 * ldi + j0, ldi, out + j0 * ldo + i0, ldo);
  }
#endif
  for (int64_t j = 0; j < cols; ++j)  // what the 16 x 16 blocks left: a bottom and a right edge
    for (int64_t i = j < j0 ? i0 : 0; i < rows; ++i) out[j * ldo + i] = in[i * ldi + j];
}

}  // namespace kiln::cpu
