#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "cpu/lane_sum.h"
#include "cpu/simd.h"

namespace kiln {
namespace {

Shape pair(const int64_t v[2]) { return {v[0], v[1]}; }

// Planes per parallel chunk, so that a chunk is worth waking a worker for.
int64_t plane_grain(int64_t elems_per_plane) {
  return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, elems_per_plane));
}

// Calls f(p) for every plane p, threaded over planes.
template <typename F>
void for_each_plane(const Pool2dSizes& s, F&& f) {
  const int64_t grain = plane_grain(s.in_h * s.in_w + s.out_h * s.out_w);
  parallel_for(0, s.planes, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

// Smallest j >= 0 with a + j*step >= bound (step > 0).
int64_t first_reaching(int64_t a, int64_t step, int64_t bound) {
  return a >= bound ? 0 : (bound - a + step - 1) / step;
}

// Kernel taps [first, last) of a window starting at `start` that land inside [0, in).
struct TapRange {
  int64_t first, last;
};
TapRange taps_inside(int64_t start, int64_t in, int64_t kernel, int64_t dilation) {
  const int64_t first = std::min(kernel, first_reaching(start, dilation, 0));
  const int64_t last = std::max(first, std::min(kernel, first_reaching(start, dilation, in)));
  return {first, last};
}

// Column tap kw seen from the output row: outputs ow in [lo, hi) read input
// column ow*stride + offset, all in bounds. Looping over ow inside a fixed tap
// keeps the inner loop branch-free, so it vectorizes along W.
struct ColumnTap {
  int64_t lo, hi, offset;
};

// The per-call geometry every plane shares.
struct Geometry {
  Pool2dSizes s;
  int64_t kh, sh, ph, dh, sw;
  std::vector<ColumnTap> cols;

  Geometry(const Pool2dSizes& sizes, const Pool2dWindow& w)
      : s(sizes), kh(w.kernel[0]), sh(w.stride[0]), ph(w.padding[0]), dh(w.dilation[0]),
        sw(w.stride[1]) {
    for (int64_t j = 0; j < w.kernel[1]; ++j) {
      const int64_t offset = j * w.dilation[1] - w.padding[1];
      const int64_t lo = std::min(s.out_w, first_reaching(offset, sw, 0));
      const int64_t hi = std::max(lo, std::min(s.out_w, first_reaching(offset, sw, s.in_w)));
      cols.push_back({lo, hi, offset});
    }
  }

  // Calls f(ih, tap) for every in-bounds kernel row ih of output row oh and every column tap.
  template <typename F>
  void for_each_tap(int64_t oh, F&& f) const {
    const int64_t h0 = oh * sh - ph;
    const TapRange rows = taps_inside(h0, s.in_h, kh, dh);
    for (int64_t r = rows.first; r < rows.last; ++r)
      for (const ColumnTap& tap : cols) f(h0 + r * dh, tap);
  }
};

template <typename T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// PyTorch's max rule: a later element wins when strictly larger or NaN.
template <typename T>
inline bool takes_max(T v, T current) {
  return v > current || v != v;
}

// float max pooling on 64-bit keys. The high half maps the value to an unsigned
// integer of the same order; the low half ranks the position so that the
// larger key is PyTorch's pick: among equal values the first position in
// row-major (scan) order, and any NaN above every number, the last NaN winning.
// An integer max then replaces compare-and-track-index, and a window's max is
// the max of its column maxima, so the work separates into a contiguous
// vertical pass and a short horizontal one. Key 0 marks "no element".
inline uint64_t max_key(float v, uint32_t pos) {
  uint32_t bits;
  const float z = v + 0.0f;  // -0 -> +0: signed zeros tie, as they compare equal
  std::memcpy(&bits, &z, sizeof bits);
  const uint32_t sign = static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31);
  const uint32_t ordered = bits ^ (sign | 0x80000000u);
  return v != v ? (uint64_t{0xFFFFFFFFu} << 32) | pos
                : (uint64_t{ordered} << 32) | (0xFFFFFFFFu - pos);
}

// Branch-free (it vectorizes): NaN keys decode to the NaN pattern 0x7FFFFFFF.
inline void from_max_key(uint64_t key, float& v, int64_t& pos) {
  const uint32_t hi = static_cast<uint32_t>(key >> 32), lo = static_cast<uint32_t>(key);
  const uint32_t sign = static_cast<uint32_t>(static_cast<int32_t>(hi) >> 31);
  const uint32_t bits = hi ^ (~sign | 0x80000000u);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  v = key == 0 ? neg_inf<float>() : value;
  pos = key == 0 ? -1 : (hi == 0xFFFFFFFFu ? int64_t{lo} : int64_t{0xFFFFFFFFu - lo});
}

// The horizontal half of a separable max pool: out[ow] = pick over kernel
// columns k of col[ow * sw + k * dw], where col holds one value per input
// column preceded by the left padding and followed by enough right padding,
// all padding being pick's identity (-inf, or key 0), so no range checks
// remain. Rows are short (16 or 32 outputs), so loop shape matters more than
// arithmetic here.
template <typename V>
class WindowReducer {
 public:
  WindowReducer(const Pool2dSizes& s, const Pool2dWindow& w)
      : out_w_(s.out_w), kernel_(w.kernel[1]), stride_(w.stride[1]), dilation_(w.dilation[1]),
        left_(w.padding[1]),
        length_(std::max(left_ + s.in_w, s.out_w * stride_ + kernel_ * dilation_) + 2),
        even_(length_ / 2 + 1), odd_(length_ / 2 + 1) {}

  int64_t left() const { return left_; }      // col[left() + iw] holds input column iw
  int64_t length() const { return length_; }  // entries col needs

  template <typename Pick>
  void operator()(V* __restrict__ out, const V* __restrict__ col, Pick pick) {
    const int64_t out_w = out_w_, kernel = kernel_, stride = stride_, dilation = dilation_;
    // 16 float lanes: a stride-2 tap beyond the first pair makes the compiler
    // peel a scalar tail as long as a whole 16-output row, so floats split col
    // into even and odd columns, and every tap reads a contiguous run. 8-lane
    // keys run faster with the taps unrolled at compile time.
    const bool pair_only = dilation == 1 && kernel == 2;
    if (sizeof(V) < 8 && stride == 2 && !pair_only) {
      V* __restrict__ even = even_.data();
      V* __restrict__ odd = odd_.data();
      for (int64_t j = 0; j < length_ / 2; ++j) {
        even[j] = col[2 * j];
        odd[j] = col[2 * j + 1];
      }
      for (int64_t k = 0; k < kernel; ++k) {
        const int64_t offset = k * dilation;  // col[2 ow + offset]
        const V* run = (offset % 2 ? odd : even) + offset / 2;
        for (int64_t ow = 0; ow < out_w; ++ow) out[ow] = k == 0 ? run[ow] : pick(out[ow], run[ow]);
      }
      return;
    }
    if (pair_only && stride == 2) return fixed<2, 2>(out, col, pick);
    if (dilation == 1 && kernel == 3 && stride == 2) return fixed<3, 2>(out, col, pick);
    if (dilation == 1 && kernel == 3 && stride == 1) return fixed<3, 1>(out, col, pick);
    if (pair_only && stride == 1) return fixed<2, 1>(out, col, pick);
    for (int64_t k = 0; k < kernel; ++k) {
      const V* tap = col + k * dilation;
      for (int64_t ow = 0; ow < out_w; ++ow)
        out[ow] = k == 0 ? tap[ow * stride] : pick(out[ow], tap[ow * stride]);
    }
  }

 private:
  template <int kKernel, int kStride, typename Pick>
  void fixed(V* __restrict__ out, const V* __restrict__ col, Pick pick) const {
    for (int64_t ow = 0; ow < out_w_; ++ow) {
      V m = col[ow * kStride];
      for (int k = 1; k < kKernel; ++k) m = pick(m, col[ow * kStride + k]);
      out[ow] = m;
    }
  }

  int64_t out_w_, kernel_, stride_, dilation_, left_, length_;
  std::vector<V> even_, odd_;
};

// Scratch for one plane: column maxima (value, row) of one output row, their
// keys (padded for the reducer), and the output keys of the plane.
struct KeyedScratch {
  WindowReducer<uint64_t> reduce;
  std::vector<float> col_value;
  std::vector<int32_t> col_row;
  std::vector<uint64_t> col, out;
  KeyedScratch(const Pool2dSizes& s, const Pool2dWindow& w)
      : reduce(s, w), col_value(s.in_w), col_row(s.in_w), col(reduce.length(), 0),
        out(s.out_h * s.out_w) {}
};

void max_pool_plane_keyed(const float* xp, float* yp, int64_t* ip, const Pool2dSizes& s,
                          const Pool2dWindow& w, KeyedScratch& scratch) {
  // Sizes in locals: they could alias the int64 index stores through a
  // reference, which would keep the compiler from vectorizing the loops.
  const int64_t in_h = s.in_h, in_w = s.in_w, out_h = s.out_h, out_w = s.out_w;
  const int64_t kh = w.kernel[0], sh = w.stride[0], ph = w.padding[0], dh = w.dilation[0];
  float* cv = scratch.col_value.data();
  int32_t* cr = scratch.col_row.data();
  uint64_t* col = scratch.col.data() + scratch.reduce.left();
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const int64_t h0 = oh * sh - ph;
    const TapRange rows = taps_inside(h0, in_h, kh, dh);
    if (rows.first < rows.last) {
      // Column maxima in float, PyTorch's rule down each column (first max row,
      // last NaN row); keys are built for the maxima only.
      std::fill(cv, cv + in_w, neg_inf<float>());
      std::fill(cr, cr + in_w, static_cast<int32_t>(h0 + rows.first * dh));
      for (int64_t r = rows.first; r < rows.last; ++r) {
        const int32_t ih = static_cast<int32_t>(h0 + r * dh);
        const float* xr = xp + ih * in_w;
        for (int64_t iw = 0; iw < in_w; ++iw) {
          const bool take = takes_max(xr[iw], cv[iw]);
          cv[iw] = take ? xr[iw] : cv[iw];
          cr[iw] = take ? ih : cr[iw];
        }
      }
      for (int64_t iw = 0; iw < in_w; ++iw)
        col[iw] = max_key(cv[iw], static_cast<uint32_t>(cr[iw] * in_w + iw));
    } else {
      std::fill(col, col + in_w, 0);
    }
    scratch.reduce(scratch.out.data() + oh * out_w, scratch.col.data(),
                   [](uint64_t a, uint64_t b) { return std::max(a, b); });
  }
  const uint64_t* keys = scratch.out.data();
  for (int64_t o = 0; o < out_h * out_w; ++o) from_max_key(keys[o], yp[o], ip[o]);
}

// Maxima only (no argmax, so no backward): column maxima down the window rows,
// then the horizontal pass; PyTorch's NaN rule in both.
template <typename T>
void max_pool2d_values(const T* x, T* y, const Pool2dSizes& s, const Pool2dWindow& w) {
  const auto pick = [](T current, T v) { return takes_max(v, current) ? v : current; };
  const int64_t grain = plane_grain(s.in_h * s.in_w + s.out_h * s.out_w);
  parallel_for(0, s.planes, grain, [&](int64_t p0, int64_t p1) {
    const int64_t in_h = s.in_h, in_w = s.in_w, out_h = s.out_h, out_w = s.out_w;
    const int64_t kh = w.kernel[0], sh = w.stride[0], ph = w.padding[0], dh = w.dilation[0];
    WindowReducer<T> reduce(s, w);
    std::vector<T> padded(reduce.length(), neg_inf<T>());
    T* cp = padded.data() + reduce.left();
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * in_h * in_w;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        std::fill(cp, cp + in_w, neg_inf<T>());
        const int64_t h0 = oh * sh - ph;
        const TapRange rows = taps_inside(h0, in_h, kh, dh);
        for (int64_t r = rows.first; r < rows.last; ++r) {
          const T* xr = xp + (h0 + r * dh) * in_w;
          for (int64_t iw = 0; iw < in_w; ++iw) cp[iw] = pick(cp[iw], xr[iw]);
        }
        reduce(y + (p * out_h + oh) * out_w, padded.data(), pick);
      }
    }
  });
}

void max_pool2d_forward_keyed(const float* x, float* y, int64_t* indices, const Pool2dSizes& s,
                              const Pool2dWindow& w) {
  const int64_t grain = plane_grain(s.in_h * s.in_w + s.out_h * s.out_w);
  parallel_for(0, s.planes, grain, [&](int64_t p0, int64_t p1) {
    KeyedScratch scratch(s, w);
    for (int64_t p = p0; p < p1; ++p)
      max_pool_plane_keyed(x + p * s.in_h * s.in_w, y + p * s.out_h * s.out_w,
                           indices + p * s.out_h * s.out_w, s, w, scratch);
  });
}

// The common 2x2 window at stride 2 without padding or dilation, every window
// inside the input (floor mode, or ceil mode that adds no partial window). The
// scan order a b / c d reduces row by row: PyTorch's rule (a later value wins
// when strictly larger or NaN) picks over each row's pair, then the bottom row's
// pick wins over the top's when strictly larger or NaN; that is the first
// maximum in scan order, or the last NaN, as one pass over the four would give.
// The row pass runs over the plane as one contiguous array when W is even (long
// vector loops however short the rows), the column pass over pairs of rows.
bool is_pair_window(const Pool2dSizes& s, const Pool2dWindow& w) {
  return w.kernel[0] == 2 && w.kernel[1] == 2 && w.stride[0] == 2 && w.stride[1] == 2 &&
         w.padding[0] == 0 && w.padding[1] == 0 && w.dilation[0] == 1 && w.dilation[1] == 1 &&
         2 * s.out_h <= s.in_h && 2 * s.out_w <= s.in_w;
}

// out[j] = the pick of x[2j], x[2j+1], right[j] = 1 where x[2j+1] won, j < n.
template <typename T>
void pick_pairs(const T* __restrict__ x, T* __restrict__ out, int32_t* __restrict__ right,
                int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T a = x[2 * j], b = x[2 * j + 1];
    const bool take = takes_max(b, a);
    out[j] = take ? b : a;
    right[j] = take ? 1 : 0;
  }
}

#if defined(__AVX512F__)
// One output row of the float 2x2 window, 16 outputs per vector: the even and odd
// columns of the two input rows r0, r1 by permutes, the same three picks as below
// (the pairs of each row, then bottom over top) as lane masks, and each index as
// row + 2 ow + (bottom won ? in_w + its right won : top's right won), formed in
// 32-bit lanes (in_w < 2^30) and widened. Masked loads and stores: nothing is read
// or written past the row's 2 out_w inputs and out_w outputs; ir may be null.
void pair_row_avx512(const float* r0, const float* r1, float* yr, int64_t* ir, int64_t out_w,
                     int64_t in_w, int64_t row) {
  const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(lane2, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i below = _mm512_set1_epi32(static_cast<int32_t>(in_w));
  const auto takes = [](__m512 v, __m512 current) {  // takes_max, lane by lane
    return static_cast<__mmask16>(_mm512_cmp_ps_mask(v, current, _CMP_GT_OQ) |
                                  _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
  };
  for (int64_t ow = 0; ow < out_w; ow += 16) {
    const int64_t n = std::min<int64_t>(16, out_w - ow);
    const auto lanes = [](int64_t k) {
      return static_cast<__mmask16>(k >= 16 ? 0xFFFFu : k <= 0 ? 0u : (1u << k) - 1);
    };
    const __mmask16 lo = lanes(2 * n), hi = lanes(2 * n - 16), out = lanes(n);
    const float* p0 = r0 + 2 * ow;
    const float* p1 = r1 + 2 * ow;
    const __m512 t0 = _mm512_maskz_loadu_ps(lo, p0), t1 = _mm512_maskz_loadu_ps(hi, p0 + 16);
    const __m512 b0 = _mm512_maskz_loadu_ps(lo, p1), b1 = _mm512_maskz_loadu_ps(hi, p1 + 16);
    const __m512 a = _mm512_permutex2var_ps(t0, lane2, t1), b = _mm512_permutex2var_ps(t0, odd, t1);
    const __m512 c = _mm512_permutex2var_ps(b0, lane2, b1), d = _mm512_permutex2var_ps(b0, odd, b1);
    const __mmask16 top_right = takes(b, a), bottom_right = takes(d, c);
    const __m512 top = _mm512_mask_mov_ps(a, top_right, b);
    const __m512 bottom = _mm512_mask_mov_ps(c, bottom_right, d);
    const __mmask16 take = takes(bottom, top);
    _mm512_mask_storeu_ps(yr + ow, out, _mm512_mask_mov_ps(top, take, bottom));
    if (!ir) continue;
    const __m512i top_off = _mm512_maskz_mov_epi32(top_right, one);
    const __m512i bottom_off = _mm512_add_epi32(below, _mm512_maskz_mov_epi32(bottom_right, one));
    const __m512i off = _mm512_add_epi32(lane2, _mm512_mask_mov_epi32(top_off, take, bottom_off));
    const __m512i base = _mm512_set1_epi64(row + 2 * ow);
    // the zero-masked forms: the plain ones start from an undefined vector, which
    // GCC reports as maybe uninitialized
    const __m512i i0 = _mm512_add_epi64(
        base, _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, off, 0)));
    const __m512i i1 = _mm512_add_epi64(
        base, _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, off, 1)));
    _mm512_mask_storeu_epi64(ir + ow, static_cast<__mmask8>(out & 0xFF), i0);
    _mm512_mask_storeu_epi64(ir + ow + 8, static_cast<__mmask8>(out >> 8), i1);
  }
}
#endif

#if defined(__AVX512F__)
// The float gradient of one plane of a 2x2 stride-2 pool whose every index lies in
// its own window (as the forward made them): each input element is either its
// window's gradient or 0, so the plane is written once, row pair by row pair, 16
// windows per vector, with no zero fill and no scatter. Returns false, having
// written part of the plane perhaps, when an index lies outside its window (indices
// from elsewhere); the caller then runs the general scatter over the whole plane.
bool pair_plane_backward_avx512(const float* dy, const int64_t* ip, float* dx,
                                const Pool2dSizes& s) {
  const int64_t in_w = s.in_w, out_w = s.out_w;
  const __m512i lane2_lo = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i lane2_hi = _mm512_add_epi64(lane2_lo, _mm512_set1_epi64(16));
  // interleave (a0, b0, a1, b1, ...): lanes 0-7 of a and b, then lanes 8-15
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
  const __m512i below = _mm512_set1_epi64(in_w);
  const __m512i below_right = _mm512_add_epi64(below, one);
  const auto lanes = [](int64_t k) {
    return static_cast<__mmask16>(k >= 16 ? 0xFFFFu : k <= 0 ? 0u : (1u << k) - 1);
  };
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    float* r0 = dx + 2 * oh * in_w;
    float* r1 = r0 + in_w;
    for (int64_t ow = 0; ow < out_w; ow += 16) {
      const int64_t n = std::min<int64_t>(16, out_w - ow);
      const __mmask16 out = lanes(n), lo = lanes(2 * n), hi = lanes(2 * n - 16);
      const int64_t o = oh * out_w + ow;
      const __m512 g = _mm512_maskz_loadu_ps(out, dy + o);
      // each index relative to its window's top-left corner, 8 lanes at a time
      const __m512i base = _mm512_set1_epi64(2 * oh * in_w + 2 * ow);
      const __m512i r0_lo = _mm512_sub_epi64(
          _mm512_maskz_loadu_epi64(static_cast<__mmask8>(out & 0xFF), ip + o), base);
      const __m512i r0_hi = _mm512_sub_epi64(
          _mm512_maskz_loadu_epi64(static_cast<__mmask8>(out >> 8), ip + o + 8), base);
      const __m512i rel_lo = _mm512_sub_epi64(r0_lo, lane2_lo);
      const __m512i rel_hi = _mm512_sub_epi64(r0_hi, lane2_hi);
      const auto at = [&](__m512i offset) {
        return static_cast<__mmask16>(_mm512_cmpeq_epi64_mask(rel_lo, offset) |
                                      (_mm512_cmpeq_epi64_mask(rel_hi, offset) << 8));
      };
      const __mmask16 a = at(zero), b = at(one), c = at(below), d = at(below_right);
      if (((a | b | c | d) & out) != out) return false;
      const __m512 ga = _mm512_maskz_mov_ps(a, g), gb = _mm512_maskz_mov_ps(b, g);
      const __m512 gc = _mm512_maskz_mov_ps(c, g), gd = _mm512_maskz_mov_ps(d, g);
      _mm512_mask_storeu_ps(r0 + 2 * ow, lo, _mm512_permutex2var_ps(ga, first, gb));
      _mm512_mask_storeu_ps(r0 + 2 * ow + 16, hi, _mm512_permutex2var_ps(ga, second, gb));
      _mm512_mask_storeu_ps(r1 + 2 * ow, lo, _mm512_permutex2var_ps(gc, first, gd));
      _mm512_mask_storeu_ps(r1 + 2 * ow + 16, hi, _mm512_permutex2var_ps(gc, second, gd));
    }
    if (in_w > 2 * out_w) {  // a last odd column that no window covers
      std::fill(r0 + 2 * out_w, r0 + in_w, 0.0f);
      std::fill(r1 + 2 * out_w, r1 + in_w, 0.0f);
    }
  }
  std::fill(dx + 2 * s.out_h * in_w, dx + s.in_h * in_w, 0.0f);  // a last odd row
  return true;
}
#endif

template <typename T>
void max_pool2d_pairs(const T* x, T* y, int64_t* indices, const Pool2dSizes& s) {
  const int64_t grain = plane_grain(s.in_h * s.in_w + s.out_h * s.out_w);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (s.in_w < (int64_t{1} << 30)) {
      parallel_for(0, s.planes, grain, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t oh = 0; oh < s.out_h; ++oh) {
            const float* r0 = x + (p * s.in_h + 2 * oh) * s.in_w;
            const int64_t o = (p * s.out_h + oh) * s.out_w;
            pair_row_avx512(r0, r0 + s.in_w, y + o, indices ? indices + o : nullptr, s.out_w,
                            s.in_w, 2 * oh * s.in_w);
          }
      });
      return;
    }
  }
#endif
  parallel_for(0, s.planes, grain, [&](int64_t p0, int64_t p1) {
    const int64_t in_w = s.in_w, out_h = s.out_h, out_w = s.out_w, rows = 2 * out_h;
    std::vector<T> row_max(rows * out_w);
    std::vector<int32_t> row_right(rows * out_w);
    T* __restrict__ rm = row_max.data();
    int32_t* __restrict__ rr = row_right.data();
    for (int64_t p = p0; p < p1; ++p) {
      const T* xp = x + p * s.in_h * in_w;
      if (in_w == 2 * out_w) {
        pick_pairs(xp, rm, rr, rows * out_w);
      } else {
        for (int64_t r = 0; r < rows; ++r)
          pick_pairs(xp + r * in_w, rm + r * out_w, rr + r * out_w, out_w);
      }
      T* __restrict__ yp = y + p * out_h * out_w;
      int64_t* __restrict__ ip = indices ? indices + p * out_h * out_w : nullptr;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const T* top = rm + 2 * oh * out_w;
        const T* bottom = top + out_w;
        T* yr = yp + oh * out_w;
        if (!ip) {
          for (int64_t ow = 0; ow < out_w; ++ow)
            yr[ow] = takes_max(bottom[ow], top[ow]) ? bottom[ow] : top[ow];
          continue;
        }
        const int32_t* top_right = rr + 2 * oh * out_w;
        const int32_t* bottom_right = top_right + out_w;
        int64_t* ir = ip + oh * out_w;
        const int64_t row = 2 * oh * in_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const bool take = takes_max(bottom[ow], top[ow]);
          yr[ow] = take ? bottom[ow] : top[ow];
          ir[ow] = row + 2 * ow + (take ? in_w + bottom_right[ow] : top_right[ow]);
        }
      }
    }
  });
}

// Divisors of one output row of avg_pool2d; 0 marks a window wholly in padding.
template <typename T>
void avg_divisors(int64_t oh, const Pool2dSizes& s, const Pool2dWindow& w,
                  bool count_include_pad, std::optional<int64_t> divisor_override, T* div) {
  const auto clipped = [](int64_t o, int64_t in, int64_t k, int64_t st, int64_t p) {
    const int64_t start = o * st - p;
    const int64_t end = std::min(start + k, in + p);  // ceil_mode windows may hang past this
    const int64_t valid = std::min(end, in) - std::max<int64_t>(start, 0);
    return std::pair<int64_t, int64_t>{end - start, valid};
  };
  const auto [h_pool, h_valid] = clipped(oh, s.in_h, w.kernel[0], w.stride[0], w.padding[0]);
  for (int64_t ow = 0; ow < s.out_w; ++ow) {
    const auto [w_pool, w_valid] = clipped(ow, s.in_w, w.kernel[1], w.stride[1], w.padding[1]);
    int64_t d = 0;
    if (h_valid > 0 && w_valid > 0)
      d = divisor_override ? *divisor_override
                           : (count_include_pad ? h_pool * w_pool : h_valid * w_valid);
    div[ow] = static_cast<T>(d);
  }
}

// Window of one adaptive-pool output: rows [h0, h1), columns [w0, w1).
struct AdaptiveWindow {
  int64_t h0, h1, w0, w1;
  int64_t size() const { return (h1 - h0) * (w1 - w0); }
};

// Calls f(plane, flat output index, window) for every output, threaded over
// planes; a plane's outputs come in order on one thread.
template <typename F>
void for_each_adaptive_window(const Pool2dSizes& s, F&& f) {
  const auto start = [](int64_t o, int64_t in, int64_t out) { return o * in / out; };
  const auto end = [](int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; };
  for_each_plane(s, [&](int64_t p) {
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const AdaptiveWindow win{start(oh, s.in_h, s.out_h), end(oh, s.in_h, s.out_h),
                                 start(ow, s.in_w, s.out_w), end(ow, s.in_w, s.out_w)};
        f(p, (p * s.out_h + oh) * s.out_w + ow, win);
      }
  });
}

void check_input_shape(const char* op, const Shape& input) {
  if (input.size() != 3 && input.size() != 4)
    fail(op, ": expected input of shape (N, C, H, W) or (C, H, W), got ", shape_str(input));
  for (size_t i = input.size() - 3; i < input.size(); ++i)
    if (input[i] <= 0)
      fail(op, ": expected input with non-zero C, H and W, got ", shape_str(input));
  if (input[0] < 0) fail(op, ": negative batch size in input ", shape_str(input));
}

int64_t planes_of(const Shape& input) {
  return input.size() == 4 ? input[0] * input[1] : input[0];
}

}  // namespace

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  // The last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

Pool2dSizes pool2d_sizes(const char* op, const Shape& input, const Pool2dWindow& w) {
  check_input_shape(op, input);
  for (int i = 0; i < 2; ++i) {
    if (w.kernel[i] <= 0)
      fail(op, ": kernel_size must be positive, got ", shape_str(pair(w.kernel)));
    if (w.stride[i] <= 0) fail(op, ": stride must be positive, got ", shape_str(pair(w.stride)));
    if (w.dilation[i] <= 0)
      fail(op, ": dilation must be positive, got ", shape_str(pair(w.dilation)));
    if (w.padding[i] < 0)
      fail(op, ": padding must be non-negative, got ", shape_str(pair(w.padding)));
    if (w.padding[i] > w.kernel[i] / 2)
      fail(op, ": padding ", shape_str(pair(w.padding)), " must be at most half of kernel_size ",
           shape_str(pair(w.kernel)));
  }
  const size_t r = input.size();
  Pool2dSizes s;
  s.planes = planes_of(input);
  s.in_h = input[r - 2];
  s.in_w = input[r - 1];
  s.out_h = pool_output_size(s.in_h, w.kernel[0], w.stride[0], w.padding[0], w.dilation[0],
                             w.ceil_mode);
  s.out_w = pool_output_size(s.in_w, w.kernel[1], w.stride[1], w.padding[1], w.dilation[1],
                             w.ceil_mode);
  if (s.out_h < 1 || s.out_w < 1)
    fail(op, ": input ", shape_str(input), " is too small for kernel_size ",
         shape_str(pair(w.kernel)), " with padding ", shape_str(pair(w.padding)), ", dilation ",
         shape_str(pair(w.dilation)), ", stride ", shape_str(pair(w.stride)),
         ": the output would be ", s.out_h, "x", s.out_w);
  return s;
}

Pool2dSizes adaptive_pool2d_sizes(const char* op, const Shape& input, int64_t out_h,
                                  int64_t out_w) {
  check_input_shape(op, input);
  if (out_h < 0 || out_w < 0)
    fail(op, ": output_size must be non-negative, got (", out_h, ", ", out_w, ")");
  const size_t r = input.size();
  return {planes_of(input), input[r - 2], input[r - 1], out_h, out_w};
}

Shape pool2d_output_shape(const Shape& input, int64_t out_h, int64_t out_w) {
  Shape out = input;
  out[out.size() - 2] = out_h;
  out[out.size() - 1] = out_w;
  return out;
}

void check_pool2d_grad(const char* op, const Shape& grad_output, const Shape& input,
                       const Pool2dSizes& s) {
  const Shape want = pool2d_output_shape(input, s.out_h, s.out_w);
  if (grad_output != want)
    fail(op, ": expected grad_output of shape ", shape_str(want), " for input ",
         shape_str(input), ", got ", shape_str(grad_output));
}

Pool2dSizes pool2d_grad_sizes(const char* op, const Shape& grad_output, const Shape& input) {
  check_input_shape(op, input);
  const size_t r = input.size();
  if (grad_output.size() != r || !std::equal(input.begin(), input.end() - 2, grad_output.begin()))
    fail(op, ": grad_output ", shape_str(grad_output), " does not match input ",
         shape_str(input), " in its leading (batch, channel) dimensions");
  return {planes_of(input), input[r - 2], input[r - 1], grad_output[r - 2], grad_output[r - 1]};
}

void check_divisor_override(const char* op, std::optional<int64_t> divisor_override) {
  if (divisor_override && *divisor_override == 0)
    fail(op, ": divisor_override must be non-zero");
}

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s,
                        const Pool2dWindow& w) {
  if (is_pair_window(s, w)) {
    max_pool2d_pairs(x, y, indices, s);
    return;
  }
  if (!indices) {
    max_pool2d_values(x, y, s, w);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (s.in_h * s.in_w < int64_t{0xFFFFFFFF}) {  // positions fit the key's low half
      max_pool2d_forward_keyed(x, y, indices, s, w);
      return;
    }
  }
  // Compare and track the index (float64, or planes too large for the keys).
  const Geometry g(s, w);
  // First in-bounds column of each output column's window (-1: none); with the
  // first in-bounds row it names the argmax when every value is -inf, as in PyTorch.
  std::vector<int64_t> first_col(s.out_w);
  for (int64_t ow = 0; ow < s.out_w; ++ow) {
    const int64_t w0 = ow * w.stride[1] - w.padding[1];
    const TapRange t = taps_inside(w0, s.in_w, w.kernel[1], w.dilation[1]);
    first_col[ow] = t.first < t.last ? w0 + t.first * w.dilation[1] : -1;
  }
  for_each_plane(s, [&](int64_t p) {
    const T* xp = x + p * s.in_h * s.in_w;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      T* yr = y + (p * s.out_h + oh) * s.out_w;
      int64_t* ir = indices + (p * s.out_h + oh) * s.out_w;
      const int64_t h0 = oh * g.sh - g.ph;
      const TapRange rows = taps_inside(h0, s.in_h, g.kh, g.dh);
      const int64_t first_row = rows.first < rows.last ? h0 + rows.first * g.dh : -1;
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        yr[ow] = neg_inf<T>();
        ir[ow] = first_row >= 0 && first_col[ow] >= 0 ? first_row * s.in_w + first_col[ow] : -1;
      }
      g.for_each_tap(oh, [&](int64_t ih, const ColumnTap& tap) {
        const T* xr = xp + ih * s.in_w;
        const int64_t base = ih * s.in_w + tap.offset;
        for (int64_t ow = tap.lo; ow < tap.hi; ++ow) {
          const T v = xr[ow * g.sw + tap.offset];
          const bool take = takes_max(v, yr[ow]);
          yr[ow] = take ? v : yr[ow];
          ir[ow] = take ? base + ow * g.sw : ir[ow];
        }
      });
    }
  });
}

template <typename T>
void max_pool2d_backward(const char* op, const T* dy, const int64_t* indices, T* dx,
                         const Pool2dSizes& s) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
#if defined(__AVX512F__)
  // windows of a 2x2 stride-2 pool: the planes whose indices all lie in their own
  // window are written without a scatter (rows of 8 outputs or more: on shorter ones
  // the vectors are mostly empty, and the scatter measured faster)
  const bool pairs = std::is_same_v<T, float> && s.in_h / 2 == s.out_h &&
                     s.in_w / 2 == s.out_w && s.out_w >= 8;
#endif
  for_each_plane(s, [&](int64_t p) {
    T* dxp = dx + p * in_plane;
    const T* dyp = dy + p * out_plane;
    const int64_t* ip = indices + p * out_plane;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      if (pairs && pair_plane_backward_avx512(dyp, ip, dxp, s)) return;
    }
#endif
    std::fill(dxp, dxp + in_plane, T(0));
    for (int64_t o = 0; o < out_plane; ++o) {
      const int64_t i = ip[o];
      if (i >= 0 && i < in_plane) {
        dxp[i] += dyp[o];
      } else if (i != -1) {
        fail(op, ": index ", i, " at flat position ", p * out_plane + o,
             " is out of range for an input plane of ", s.in_h, "x", s.in_w);
      }
    }
  });
}

// The divisors of every output position (out_h rows of out_w), the same for every
// plane: computed once, not per plane (small planes, e.g. (128, 1024, 2, 2), have
// more planes than outputs per plane).
template <typename T>
std::vector<T> avg_divisor_table(const Pool2dSizes& s, const Pool2dWindow& w,
                                 bool count_include_pad, std::optional<int64_t> divisor_override) {
  std::vector<T> div(static_cast<size_t>(s.out_h * s.out_w));
  for (int64_t oh = 0; oh < s.out_h; ++oh)
    avg_divisors(oh, s, w, count_include_pad, divisor_override, div.data() + oh * s.out_w);
  return div;
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s, const Pool2dWindow& w,
                        bool count_include_pad, std::optional<int64_t> divisor_override) {
  const Geometry g(s, w);
  const std::vector<T> divisors = avg_divisor_table<T>(s, w, count_include_pad, divisor_override);
  for_each_plane(s, [&](int64_t p) {
    const T* xp = x + p * s.in_h * s.in_w;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      T* yr = y + (p * s.out_h + oh) * s.out_w;
      const T* div = divisors.data() + oh * s.out_w;
      std::fill(yr, yr + s.out_w, T(0));
      g.for_each_tap(oh, [&](int64_t ih, const ColumnTap& tap) {
        const T* xr = xp + ih * s.in_w;
        for (int64_t ow = tap.lo; ow < tap.hi; ++ow) yr[ow] += xr[ow * g.sw + tap.offset];
      });
      for (int64_t ow = 0; ow < s.out_w; ++ow)
        yr[ow] = div[ow] != T(0) ? yr[ow] / div[ow] : T(0);
    }
  });
}

template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s, const Pool2dWindow& w,
                         bool count_include_pad, std::optional<int64_t> divisor_override) {
  const Geometry g(s, w);
  const std::vector<T> divisors = avg_divisor_table<T>(s, w, count_include_pad, divisor_override);
  for_each_plane(s, [&](int64_t p) {
    T* dxp = dx + p * s.in_h * s.in_w;
    std::fill(dxp, dxp + s.in_h * s.in_w, T(0));
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const T* dyr = dy + (p * s.out_h + oh) * s.out_w;
      const T* div = divisors.data() + oh * s.out_w;
      g.for_each_tap(oh, [&](int64_t ih, const ColumnTap& tap) {
        T* dxr = dxp + ih * s.in_w;
        for (int64_t ow = tap.lo; ow < tap.hi; ++ow)  // each tap its output's share
          dxr[ow * g.sw + tap.offset] += div[ow] != T(0) ? dyr[ow] / div[ow] : T(0);
      });
    }
  });
}

template <typename T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s) {
  const int64_t in_w = s.in_w;
  for_each_adaptive_window(s, [&](int64_t p, int64_t o, const AdaptiveWindow& win) {
    const T* xp = x + p * s.in_h * in_w;
    double sum = 0;
    if (win.w0 == 0 && win.w1 == in_w) {  // whole rows: one contiguous run (global pooling)
      const T* run = xp + win.h0 * in_w;
      sum = lane_sum((win.h1 - win.h0) * in_w, [&](int64_t i) { return double(run[i]); });
    } else {
      for (int64_t ih = win.h0; ih < win.h1; ++ih) {
        const T* run = xp + ih * in_w + win.w0;
        sum += lane_sum(win.w1 - win.w0, [&](int64_t i) { return double(run[i]); });
      }
    }
    y[o] = static_cast<T>(sum / static_cast<double>(win.size()));
  });
}

template <typename T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s) {
  const int64_t in_plane = s.in_h * s.in_w;
  for_each_plane(s, [&](int64_t p) { std::fill(dx + p * in_plane, dx + (p + 1) * in_plane, T(0)); });
  // Windows of one plane may overlap; each plane is visited by one thread only.
  for_each_adaptive_window(s, [&](int64_t p, int64_t o, const AdaptiveWindow& win) {
    T* dxp = dx + p * in_plane;
    const T share = dy[o] / static_cast<T>(win.size());
    for (int64_t ih = win.h0; ih < win.h1; ++ih)
      for (int64_t iw = win.w0; iw < win.w1; ++iw) dxp[ih * s.in_w + iw] += share;
  });
}

template <typename T>
void adaptive_max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s) {
  for_each_adaptive_window(s, [&](int64_t p, int64_t o, const AdaptiveWindow& win) {
    const T* xp = x + p * s.in_h * s.in_w;
    T best = neg_inf<T>();
    int64_t arg = win.h0 * s.in_w + win.w0;
    for (int64_t ih = win.h0; ih < win.h1; ++ih)
      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
        const T v = xp[ih * s.in_w + iw];
        if (takes_max(v, best)) {
          best = v;
          arg = ih * s.in_w + iw;
        }
      }
    y[o] = best;
    indices[o] = arg;
  });
}

Pool2dSizes fractional_max_pool2d_sizes(const char* op, const Shape& input, int64_t kernel_h,
                                        int64_t kernel_w, int64_t out_h, int64_t out_w,
                                        const Shape& samples) {
  check_input_shape(op, input);
  if (kernel_h <= 0 || kernel_w <= 0)
    fail(op, ": kernel_size must be positive, got (", kernel_h, ", ", kernel_w, ")");
  if (out_h < 0 || out_w < 0)
    fail(op, ": output_size must be non-negative, got (", out_h, ", ", out_w, ")");
  const size_t r = input.size();
  const int64_t in_h = input[r - 2], in_w = input[r - 1];
  if (out_h + kernel_h - 1 > in_h || out_w + kernel_w - 1 > in_w)
    fail(op, ": kernel_size (", kernel_h, ", ", kernel_w, ") with output_size (", out_h, ", ",
         out_w, ") is too large for input ", shape_str(input),
         ": needs output_size + kernel_size - 1 <= input size");
  const int64_t batch = r == 4 ? input[0] : 1, channels = input[r - 3];
  if (samples.size() != 3 || samples[0] < batch || samples[1] != channels || samples[2] != 2)
    fail(op, ": expected _random_samples of shape (N', ", channels, ", 2) with N' >= ", batch,
         " for input ", shape_str(input), ", got ", shape_str(samples));
  return {planes_of(input), in_h, in_w, out_h, out_w};
}

namespace {

// Window starts along one dimension, as PyTorch's generate_intervals, in T.
template <typename T>
void fractional_starts(const char* op, T u, int64_t in, int64_t out, int64_t kernel,
                       std::vector<int64_t>& starts) {
  starts.assign(out, 0);
  if (out > 1) {
    const T alpha = static_cast<T>(in - kernel) / static_cast<T>(out - 1);
    const T base = u * alpha;
    // A finite u keeps every start in range; a NaN, an infinity or a huge u would
    // not even convert to an integer.
    const auto fits = [](T v) { return std::abs(double(v)) < 0x1p62; };
    if (!fits(base) || !fits((static_cast<T>(out) + u) * alpha))
      fail(op, ": _random_samples value ", double(u), " puts a window outside the input");
    for (int64_t i = 0; i + 1 < out; ++i) {
      const T pos = (static_cast<T>(i) + u) * alpha;
      starts[i] = static_cast<int64_t>(pos) - static_cast<int64_t>(base);
      if (starts[i] < 0 || starts[i] > in - kernel)
        fail(op, ": _random_samples value ", double(u), " puts a window outside the input");
    }
  }
  if (out > 0) starts[out - 1] = in - kernel;
}

}  // namespace

template <typename T>
void fractional_max_pool2d_forward(const T* x, const T* samples, T* y, int64_t* indices,
                                   const Pool2dSizes& s, int64_t kernel_h, int64_t kernel_w) {
  const char* op = "fractional_max_pool2d";
  for_each_plane(s, [&](int64_t p) {
    std::vector<int64_t> rows, cols;
    fractional_starts(op, samples[2 * p + 1], s.in_h, s.out_h, kernel_h, rows);
    fractional_starts(op, samples[2 * p], s.in_w, s.out_w, kernel_w, cols);
    const T* xp = x + p * s.in_h * s.in_w;
    T* yp = y + p * s.out_h * s.out_w;
    int64_t* ip = indices + p * s.out_h * s.out_w;
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        T best = neg_inf<T>();
        int64_t at = rows[oh] * s.in_w + cols[ow];
        for (int64_t h = rows[oh]; h < rows[oh] + kernel_h; ++h)
          for (int64_t w = cols[ow]; w < cols[ow] + kernel_w; ++w) {
            const T v = xp[h * s.in_w + w];
            if (takes_max(v, best)) best = v, at = h * s.in_w + w;
          }
        yp[oh * s.out_w + ow] = best;
        ip[oh * s.out_w + ow] = at;
      }
  });
}

#define KILN_POOL_INSTANTIATE(T)                                                              \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dSizes&,             \
                                      const Pool2dWindow&);                                   \
  template void max_pool2d_backward<T>(const char*, const T*, const int64_t*, T*,             \
                                       const Pool2dSizes&);                                   \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dSizes&, const Pool2dWindow&,  \
                                      bool, std::optional<int64_t>);                          \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dSizes&, const Pool2dWindow&, \
                                       bool, std::optional<int64_t>);                         \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, const Pool2dSizes&);             \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, const Pool2dSizes&);            \
  template void adaptive_max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dSizes&);  \
  template void fractional_max_pool2d_forward<T>(const T*, const T*, T*, int64_t*,            \
                                                 const Pool2dSizes&, int64_t, int64_t);
KILN_POOL_INSTANTIATE(float)
KILN_POOL_INSTANTIATE(double)
#undef KILN_POOL_INSTANTIATE

}  // namespace kiln
