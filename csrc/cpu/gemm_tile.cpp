#include "cpu/gemm_tile.h"

#include <algorithm>
#include <array>
#include <numeric>
#include <utility>
#include <vector>

#include "common/blas.h"
#include "common/check.h"
#include "common/parallel.h"


namespace kiln::cpu {
namespace {

// The definition, as a loop nest whose inner loop runs along contiguous B and C rows.
template <typename T>
void tap_gemm_loops(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a,
                    const int64_t* rows, const int64_t* tap, int64_t a_cs, const T* b,
                    int64_t b_tap, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* out = c + i * ldc;
    if (!accumulate) std::fill(out, out + N, T(0));
    for (int64_t t = 0; t < taps; ++t) {
      const T* ai = a + rows[i] + tap[t];
      for (int64_t k = 0; k < K; ++k) {
        const T av = ai[k * a_cs];
        const T* bk = b + t * b_tap + k * ldb;
        for (int64_t j = 0; j < N; ++j) out[j] += av * bk[j];
      }
    }
  }
}

// kiln::gemm (OpenBLAS) for one product; A must be row-major or column-major.
template <typename T>
void blas_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  // BLAS wants the leading dimension to cover a row even where only one row exists.
  const T beta = accumulate ? T(1) : T(0);
  if (a_cs == 1 && (M == 1 || a_rs >= K))
    gemm(false, false, M, N, K, T(1), a, M == 1 ? std::max<int64_t>(K, 1) : a_rs, b, ldb, beta,
         c, ldc);
  else if (a_rs == 1 && (K == 1 || a_cs >= M))
    gemm(true, false, M, N, K, T(1), a, K == 1 ? std::max<int64_t>(M, 1) : a_cs, b, ldb, beta,
         c, ldc);
  else
    fail("gemm_tile: A needs a unit stride, got strides (", a_rs, ", ", a_cs, ")");
}

#if KILN_FLOAT_VEC
using simd::kLanes;
using simd::Vec;

// One MR x (kLanes * NV) tile of C, the whole sum in registers. Each step loads
// NV vectors of B and broadcasts MR scalars of A: MR * NV FMAs per MR + NV loads,
// so with enough accumulators the two FMA pipes, not the loads, are the limit.
template <int MR, int NV>
void micro(int64_t taps, const int64_t* tap, int64_t K, const float* a, const int64_t* rows,
           int64_t a_cs, const float* b, int64_t b_tap, int64_t ldb, float* c, int64_t ldc,
           int64_t n_valid, bool accumulate) {
  Vec acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = simd::zero();
  for (int64_t t = 0; t < taps; ++t) {
    const float* ap[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) ap[i] = a + rows[i] + tap[t];
    const float* bk = b + t * b_tap;
    for (int64_t k = 0; k < K; ++k) {
      Vec bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = simd::load(bk + kLanes * j);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const Vec av = simd::broadcast(ap[i][k * a_cs]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = simd::fmadd(av, bv[j], acc[i][j]);
      }
      bk += ldb;
    }
  }
  simd::Mask mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) mask[j] = simd::first(n_valid - kLanes * j);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* dst = c + i * ldc + kLanes * j;
      Vec v = acc[i][j];
      if (accumulate) v = simd::add(v, simd::load(dst, mask[j]));
      simd::store(dst, v, mask[j]);
    }
}

using Micro = void (*)(int64_t, const int64_t*, int64_t, const float*, const int64_t*, int64_t,
                       const float*, int64_t, int64_t, float*, int64_t, int64_t, bool);

// The most of a panel of B one slice of the sum reads (see tap_gemm): a quarter of
// a 1 MiB L2, beside A's rows and C's tiles.
constexpr int64_t kSliceBytes = int64_t(256) << 10;

// Rows per tile for each width NV = 1..4: as many accumulators as the register
// file holds beside the NV vectors of B and the broadcast (32 registers on
// AVX-512, 16 on AVX2, where a tile is at most 3 vectors wide: 4 x 3
// accumulators keep both FMA pipes busy, 2 x 4 would not).
#ifdef __AVX512F__
constexpr std::array<int, 4> kRows = {12, 12, 8, 6};
constexpr int kMaxVectors = 4;
#else
constexpr std::array<int, 4> kRows = {12, 6, 4, 2};
constexpr int kMaxVectors = 3;
#endif

template <int NV, int... R>
constexpr std::array<Micro, sizeof...(R)> row_variants(std::integer_sequence<int, R...>) {
  return {&micro<R + 1, NV>...};
}

// The full tile of each width and every shorter one for the last rows.
const auto kMicro1 = row_variants<1>(std::make_integer_sequence<int, kRows[0]>());
const auto kMicro2 = row_variants<2>(std::make_integer_sequence<int, kRows[1]>());
const auto kMicro3 = row_variants<3>(std::make_integer_sequence<int, kRows[2]>());
const auto kMicro4 = row_variants<4>(std::make_integer_sequence<int, kRows[3]>());

Micro micro_for(int nv, int rows) {
  switch (nv) {
    case 1: return kMicro1[rows - 1];
    case 2: return kMicro2[rows - 1];
    case 3: return kMicro3[rows - 1];
    default: return kMicro4[rows - 1];
  }
}

// Panel p's B: B_t(k, j0 + j) = b[t * b_tap + k * ldb + j].
struct PanelOf {
  const float* b;
  int64_t b_tap, ldb;
};

// Panels of B as even as whole vectors allow (no narrow leftover panel), each at
// most kMaxVectors wide: panel p holds columns [col(p), col(p + 1)).
struct Panels {
  int64_t vectors, count;
  explicit Panels(int64_t N)
      : vectors((N + kLanes - 1) / kLanes), count((vectors + kMaxVectors - 1) / kMaxVectors) {}
  int nv(int64_t p) const {
    return static_cast<int>(vectors / count + (p < vectors % count ? 1 : 0));
  }
  int64_t col(int64_t p) const {  // whole vectors before panel p
    return kLanes * (p * (vectors / count) + std::min(p, vectors % count));
  }
};

// The float sum, panel by panel; panel_b(j0, nv) gives the B of the panel of nv
// vectors from column j0.
template <typename PanelB>
void tap_gemm_float(int64_t M, int64_t N, int64_t K, int64_t taps, const float* a,
                    const int64_t* rows, const int64_t* tap, int64_t a_cs, PanelB&& panel_b,
                    float* c, int64_t ldc, bool accumulate) {
  const Panels panels(N);
  // The sum is taken in slices of taps (or, with one tap, of K) whose part of a
  // panel of B fits in kSliceBytes, so every row tile of A rereads it from L2
  // rather than from L3 or memory (a conv layer with many channels has panels of
  // MiBs, and two cores share the L3's bandwidth); C accumulates between slices.
  const int64_t slice_rows = std::max<int64_t>(kSliceBytes / (kMaxVectors * kLanes * 4), 1);
  const int64_t tap_slice =
      taps > 1 ? std::max<int64_t>(slice_rows / std::max<int64_t>(K, 1), 1) : 1;
  const int64_t k_slice = taps > 1 ? std::max<int64_t>(K, 1) : slice_rows;
  for (int64_t panel = 0; panel < panels.count; ++panel) {
    const int nv = panels.nv(panel);
    const int64_t j0 = panels.col(panel), cols = std::min<int64_t>(nv * kLanes, N - j0);
    const PanelOf pb = panel_b(j0, nv);
    const int mr = kRows[nv - 1];
    for (int64_t t0 = 0; t0 < std::max<int64_t>(taps, 1); t0 += tap_slice)
      for (int64_t k0 = 0; k0 < std::max<int64_t>(K, 1); k0 += k_slice) {
        const int64_t nt = std::min(tap_slice, taps - t0), nk = std::min(k_slice, K - k0);
        const bool add = accumulate || t0 > 0 || k0 > 0;
        for (int64_t i0 = 0; i0 < M; i0 += mr) {
          const int m = static_cast<int>(std::min<int64_t>(mr, M - i0));
          micro_for(nv, m)(nt, tap + t0, nk, a + k0 * a_cs, rows + i0, a_cs,
                           pb.b + t0 * pb.b_tap + k0 * pb.ldb, pb.b_tap, pb.ldb,
                           c + i0 * ldc + j0, ldc, cols, add);
        }
      }
  }
}
#endif  // a float vector (simd.h)

}  // namespace

template <typename T>
void tap_gemm(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a, const int64_t* rows,
              const int64_t* tap, int64_t a_cs, const T* b, int64_t b_tap, int64_t ldb, T* c,
              int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    tap_gemm_float(M, N, K, taps, a, rows, tap, a_cs,
                   [&](int64_t j0, int) { return PanelOf{b + j0, b_tap, ldb}; }, c, ldc,
                   accumulate);
    return;
  }
#endif
  tap_gemm_loops(M, N, K, taps, a, rows, tap, a_cs, b, b_tap, ldb, c, ldc, accumulate);
}

// The widths of tap_gemm's panels of B for N columns: whole vectors (see Panels),
// or without the micro-kernel one panel of N.
template <typename T>
std::vector<int64_t> panel_widths(int64_t N) {
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    const Panels panels(N);
    std::vector<int64_t> widths;
    for (int64_t p = 0; p < panels.count; ++p) widths.push_back(panels.nv(p) * kLanes);
    return widths;
  }
#endif
  return {N};
}

template <typename T>
int64_t packed_b_size(int64_t N, int64_t K, int64_t taps) {
  const std::vector<int64_t> widths = panel_widths<T>(N);
  return taps * K * std::accumulate(widths.begin(), widths.end(), int64_t(0));
}

template <typename T>
void pack_b(int64_t N, int64_t K, int64_t taps, const T* b, int64_t b_tap, int64_t ldb,
            int64_t b_js, T* bp) {
  const std::vector<int64_t> widths = panel_widths<T>(N);
  std::vector<int64_t> starts(widths.size() + 1, 0);  // first column of each panel
  std::partial_sum(widths.begin(), widths.end(), starts.begin() + 1);
  // One task per panel, its columns 16 at a time: each packed row's cache line is
  // written whole, and with a layer's weights as B (columns far apart, taps and
  // rows near) the source lines of 16 columns stay in L2 across the taps and rows.
  constexpr int64_t kColumns = 16;
  const int64_t count = static_cast<int64_t>(widths.size());
  const int64_t grain =
      std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(taps * K * widths[0], 1));
  parallel_for(0, count, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t width = widths[p], j0 = starts[p], cols = std::min(width, N - j0);
      T* panel = bp + taps * K * j0;
      for (int64_t c0 = 0; c0 < width; c0 += kColumns)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t k = 0; k < K; ++k) {
            T* to = panel + (t * K + k) * width;
            const T* from = b + t * b_tap + k * ldb + j0 * b_js;
            for (int64_t j = c0; j < std::min(c0 + kColumns, width); ++j)
              to[j] = j < cols ? from[j * b_js] : T(0);
          }
    }
  });
}

template <typename T>
void tap_gemm_packed(int64_t M, int64_t N, int64_t K, int64_t taps, const T* a,
                     const int64_t* rows, const int64_t* tap, int64_t a_cs, const T* bp, T* c,
                     int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    tap_gemm_float(M, N, K, taps, a, rows, tap, a_cs,
                   [&](int64_t j0, int nv) {
                     const int64_t width = nv * kLanes;
                     return PanelOf{bp + taps * K * j0, K * width, width};
                   },
                   c, ldc, accumulate);
    return;
  }
#endif
  tap_gemm_loops(M, N, K, taps, a, rows, tap, a_cs, bp, K * N, N, c, ldc, accumulate);
}

template <typename T>
void gemm_tile(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_cs,
               const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  // With 8 lanes (AVX2), a product at least 64 on every side pays for OpenBLAS's
  // packing, and its kernels then beat the unpacked tiles (see direct_pays in conv.cpp).
  const bool large = simd::kLanes < 16 && M >= 64 && N >= 64 && K >= 64;
  if constexpr (has_fast_tile<T>()) {
    if (!large) {
      std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(M, 0)));
      for (int64_t i = 0; i < M; ++i) rows[i] = i * a_rs;
      const int64_t no_shift = 0;
      tap_gemm<T>(M, N, K, 1, a, rows.data(), &no_shift, a_cs, b, 0, ldb, c, ldc, accumulate);
      return;
    }
  }
  blas_tile<T>(M, N, K, a, a_rs, a_cs, b, ldb, c, ldc, accumulate);
}

template void tap_gemm<float>(int64_t, int64_t, int64_t, int64_t, const float*, const int64_t*,
                              const int64_t*, int64_t, const float*, int64_t, int64_t, float*,
                              int64_t, bool);
template void tap_gemm<double>(int64_t, int64_t, int64_t, int64_t, const double*,
                               const int64_t*, const int64_t*, int64_t, const double*, int64_t,
                               int64_t, double*, int64_t, bool);
template int64_t packed_b_size<float>(int64_t, int64_t, int64_t);
template int64_t packed_b_size<double>(int64_t, int64_t, int64_t);
template void pack_b<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                            float*);
template void pack_b<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                             int64_t, double*);
template void tap_gemm_packed<float>(int64_t, int64_t, int64_t, int64_t, const float*,
                                     const int64_t*, const int64_t*, int64_t, const float*, float*,
                                     int64_t, bool);
template void tap_gemm_packed<double>(int64_t, int64_t, int64_t, int64_t, const double*,
                                      const int64_t*, const int64_t*, int64_t, const double*,
                                      double*, int64_t, bool);
template void gemm_tile<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                               const float*, int64_t, float*, int64_t, bool);
template void gemm_tile<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                                const double*, int64_t, double*, int64_t, bool);

}  // namespace kiln::cpu
