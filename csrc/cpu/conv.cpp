#include "cpu/conv.h"

#include <algorithm>
#include <array>
#include <memory>
#include <utility>
#include <vector>

#include "common/blas.h"
#include "common/parallel.h"
#include "cpu/gemm_tile.h"
#include "cpu/transpose.h"
#include "cpu/winograd.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kiln::cpu {
namespace {

// Output pixels per block: one 64-wide panel of the micro-kernel, so a block's
// im2col rows (C/G*R*S x 64) stay in L2 while the weights stream past them.
constexpr int64_t kBlock = 64;
// Below about this many FLOPs a chunk of work is not worth a thread wake-up.
constexpr int64_t kGrainFlops = 1 << 20;
// Sizes and arguments above this would overflow the index arithmetic.
constexpr int64_t kMaxArg = int64_t(1) << 31;

std::string pair_str(Pair p) { return shape_str({p[0], p[1]}); }

void check_args(const char* op, Pair stride, Pair padding, Pair dilation, int64_t groups) {
  for (int i = 0; i < 2; ++i) {
    KILN_CHECK(stride[i] >= 1 && stride[i] <= kMaxArg, op,
               ": stride must be positive, got ", pair_str(stride));
    KILN_CHECK(dilation[i] >= 1 && dilation[i] <= kMaxArg, op,
               ": dilation must be positive, got ", pair_str(dilation));
    KILN_CHECK(padding[i] >= 0 && padding[i] <= kMaxArg, op,
               ": padding must be non-negative, got ", pair_str(padding));
  }
  KILN_CHECK(groups >= 1 && groups <= kMaxArg, op, ": groups must be positive, got ", groups);
}

void check_ranks(const char* op, const Shape& input, const Shape& weight, const char* weight_dims) {
  KILN_CHECK(input.size() == 4, op, ": expected input of shape (N, C, H, W), got ",
             shape_str(input));
  KILN_CHECK(weight.size() == 4, op, ": expected weight of shape ", weight_dims, ", got ",
             shape_str(weight));
  KILN_CHECK(input[0] >= 0 && input[0] <= kMaxArg && input[2] >= 0 && input[2] <= kMaxArg &&
                 input[3] >= 0 && input[3] <= kMaxArg,
             op, ": input ", shape_str(input), " has a negative or too large size");
  KILN_CHECK(input[1] >= 1 && input[1] <= kMaxArg, op, ": input ", shape_str(input),
             " has no channels");
  for (int64_t d : weight)
    KILN_CHECK(d >= 1 && d <= kMaxArg, op, ": weight ", shape_str(weight),
               " has a zero or negative size");
}

// One image's channels copied with the padding made explicit: padded row i
// holds input row i - pad_h (zeros outside the input), and it has exactly the
// rows and columns the output grid's windows reach, so the kernels read it
// with no bounds checks. A negative padding (the stride-1 input gradient's
// transform) crops instead.
struct Padded {
  int64_t H, W;  // padded plane size
  explicit Padded(const ConvGeometry& g)
      : H((g.P - 1) * g.stride_h + (g.R - 1) * g.dil_h + 1),
        W((g.Q - 1) * g.stride_w + (g.S - 1) * g.dil_w + 1) {}
  int64_t plane() const { return H * W; }
};


// dst[t] = src[t * stride] for t < n.
template <typename T>
inline void copy_run(T* dst, const T* src, int64_t stride, int64_t n) {
  if (stride != 1) {
    for (int64_t t = 0; t < n; ++t) dst[t] = src[t * stride];
    return;
  }
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {  // image rows are short: no memmove call,
    int64_t t = 0;                              // no masked stores (slow here)
    for (; t + 16 <= n; t += 16) _mm512_storeu_ps(dst + t, _mm512_loadu_ps(src + t));
    if (t + 8 <= n) {
      _mm256_storeu_ps(dst + t, _mm256_loadu_ps(src + t));
      t += 8;
    }
    for (; t < n; ++t) dst[t] = src[t];
    return;
  }
#endif
  std::copy(src, src + n, dst);
}


// The same for im2col, whose buffers end in kSlack spare elements: contiguous
// float runs (output rows, often only 8 to 32 pixels) move in whole vectors,
// and the up to 15 elements written past a run are rewritten by the next run
// or fall in the block's unused columns. (Masked stores measured slower.)
constexpr int64_t kSlack = 16;

template <typename T>
inline void copy_run_over(T* dst, const T* src, int64_t stride, int64_t n) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 1) {
      for (int64_t t = 0; t < n; t += 16) _mm512_storeu_ps(dst + t, _mm512_loadu_ps(src + t));
      return;
    }
  }
#endif
  copy_run(dst, src, stride, n);
}

// dst[t * stride] += src[t] for t < n.
template <typename T>
inline void add_run(T* dst, const T* src, int64_t stride, int64_t n) {
  if (stride == 1)  // the common case, vectorized
    for (int64_t t = 0; t < n; ++t) dst[t] += src[t];
  else
    for (int64_t t = 0; t < n; ++t) dst[t * stride] += src[t];
}

// Copies the C channel planes at x into the inside of xp (C planes of
// pd.H x pd.W, plus kSlack). The padding border is never written, so a buffer
// zeroed once serves every image.
template <typename T>
void pad_planes(const ConvGeometry& g, const Padded& pd, int64_t C, const T* x, T* xp) {
  // Padded row i / column j reads input row i - pad_h / column j - pad_w.
  const int64_t i0 = std::clamp<int64_t>(g.pad_h, 0, pd.H);
  const int64_t i1 = std::clamp<int64_t>(g.pad_h + g.H, i0, pd.H);
  const int64_t j0 = std::clamp<int64_t>(g.pad_w, 0, pd.W);
  const int64_t j1 = std::clamp<int64_t>(g.pad_w + g.W, j0, pd.W);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = i0; i < i1; ++i)
      copy_run(xp + (c * pd.H + i) * pd.W + j0, x + (c * g.H + i - g.pad_h) * g.W + (j0 - g.pad_w),
               1, j1 - j0);
}

// pad_planes for one plane spread out by `spread` (one zero between neighbours for
// spread 2): padded row ih * spread_h + pad_h, column iw * spread_w + pad_w holds
// x[ih, iw]. Every plane writes the same cells, so here too a buffer zeroed once
// serves every plane.
template <typename T>
void spread_plane(const ConvGeometry& g, const Padded& pd, Pair spread, const T* x, T* xp) {
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const int64_t i = ih * spread[0] + g.pad_h;
    if (i < 0 || i >= pd.H) continue;
    for (int64_t iw = 0; iw < g.W; ++iw) {
      const int64_t j = iw * spread[1] + g.pad_w;
      if (j >= 0 && j < pd.W) xp[i * pd.W + j] = x[ih * g.W + iw];
    }
  }
}

// The adjoint of pad_planes: dx = the input-sized window of dxp.
template <typename T>
void crop_planes(const ConvGeometry& g, const Padded& pd, int64_t C, const T* dxp, T* dx) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t ih = 0; ih < g.H; ++ih) {
      T* out = dx + (c * g.H + ih) * g.W;
      const int64_t i = ih + g.pad_h;
      if (i < 0 || i >= pd.H) {
        std::fill(out, out + g.W, T(0));
        continue;
      }
      for (int64_t iw = 0; iw < g.W; ++iw) {
        const int64_t j = iw + g.pad_w;
        out[iw] = j >= 0 && j < pd.W ? dxp[(c * pd.H + i) * pd.W + j] : T(0);
      }
    }
}

// Walks the im2col matrix of one group restricted to the output pixels
// [pq0, pq0 + cols): for every row (c, r, s) and every run of pixels within
// one output row, calls fn(row, j, n, offset): columns j .. j+n-1 of the row
// are xp[offset + t * stride_w], xp being the group's padded planes.
template <typename F>
void walk_im2col(const ConvGeometry& g, const Padded& pd, int64_t pq0, int64_t cols, F&& fn) {
  const int64_t Cg = g.C / g.groups, p0 = pq0 / g.Q, q0 = pq0 % g.Q;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t row = (c * g.R + r) * g.S + s;
        const int64_t base = (c * pd.H + r * g.dil_h) * pd.W + s * g.dil_w;
        int64_t n = 0;
        for (int64_t j = 0, p = p0, q = q0; j < cols; j += n, q = 0, ++p) {
          n = std::min(g.Q - q, cols - j);
          fn(row, j, n, base + p * g.stride_h * pd.W + q * g.stride_w);
        }
      }
}

// col[row * ld + j] = the im2col matrix of pixels [pq0, pq0 + cols).
template <typename T>
void im2col(const ConvGeometry& g, const Padded& pd, const T* xp, int64_t pq0, int64_t cols,
            T* col, int64_t ld) {
  walk_im2col(g, pd, pq0, cols, [&](int64_t row, int64_t j, int64_t n, int64_t offset) {
    copy_run_over(col + row * ld + j, xp + offset, g.stride_w, n);
  });
}

// The adjoint of im2col: dxp[...] += col.
template <typename T>
void col2im_add(const ConvGeometry& g, const Padded& pd, const T* col, int64_t ld, int64_t pq0,
                int64_t cols, T* dxp) {
  walk_im2col(g, pd, pq0, cols, [&](int64_t row, int64_t j, int64_t n, int64_t offset) {
    add_run(dxp + offset, col + row * ld + j, g.stride_w, n);
  });
}

int64_t blocks_of(const ConvGeometry& g) { return (g.P * g.Q + kBlock - 1) / kBlock; }

int64_t grain_for(int64_t flops_per_task) {
  return std::max<int64_t>(1, kGrainFlops / std::max<int64_t>(flops_per_task, 1));
}

// Depthwise layers: every output channel k reads the one input channel
// k / (K/G) (C/G == 1, so no sum over channels and nothing for a matrix
// product to share). Each output row is R*S scaled, shifted input rows added
// together, vectorized along the row.
bool depthwise(const ConvGeometry& g) { return g.C == g.groups; }

// 1x1 convolutions at stride 1 without padding (MobileNet's pointwise layers,
// projection shortcuts): their weight gradient, a sum over pixels, may take
// backward_weight_pixels with each image's pixels as one long row, and the
// direct forward reads their input in place.
bool pointwise(const ConvGeometry& g) {
  return g.R == 1 && g.S == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0 && !depthwise(g);
}

// The stride-1 input gradient as a forward convolution: dx = conv(dy, w'),
// w'[g*C/G + c, k, r, s] = w[g*K/G + k, c, R-1-r, S-1-s], padding dil*(R-1) - pad
// (negative padding crops; the window walk handles either sign).
ConvGeometry input_gradient_as_forward(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.C = g.K;
  t.H = g.P;
  t.W = g.Q;
  t.K = g.C;
  t.P = g.H;
  t.Q = g.W;
  t.pad_h = g.dil_h * (g.R - 1) - g.pad_h;
  t.pad_w = g.dil_w * (g.S - 1) - g.pad_w;
  return t;
}

template <typename T>
void backward_input_as_forward(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S;
  auto flipped = scratch<T>(static_cast<size_t>(g.C * Kg * RS));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c) {
        const T* from = w + ((grp * Kg + k) * Cg + c) * RS;
        T* to = flipped.get() + ((grp * Cg + c) * Kg + k) * RS;
        std::reverse_copy(from, from + RS, to);  // (r, s) -> (R-1-r, S-1-s)
      }
  conv2d_forward(input_gradient_as_forward(g), dy, flipped.get(), static_cast<const T*>(nullptr),
                 dx);
}

// Output channels padded to whole vectors: the width of the B and C blocks.
int64_t padded_channels(int64_t k) { return (k + 15) / 16 * 16; }

// dx (C, H, W) of one image = the input-sized window of its channels-last padded
// gradient dxh (pd.H x pd.W pixels of C channels); the adjoint of pad_channels_last.
template <typename T>
void crop_channels_last(const ConvGeometry& g, const Padded& pd, int64_t C, const T* dxh, T* dx) {
  const int64_t HW = g.H * g.W;
  const int64_t j0 = std::clamp<int64_t>(g.pad_w, 0, pd.W);
  const int64_t j1 = std::clamp<int64_t>(g.pad_w + g.W, j0, pd.W);
  for (int64_t ih = 0; ih < g.H; ++ih) {
    const int64_t i = ih + g.pad_h;
    const bool inside = i >= 0 && i < pd.H;
    // Input columns [iw0, iw1) lie inside dxh; the rest (rows or columns no window
    // reaches) get no gradient.
    const int64_t iw0 = inside ? j0 - g.pad_w : 0, iw1 = inside ? j1 - g.pad_w : 0;
    for (int64_t c = 0; c < C; ++c) {
      T* row = dx + c * HW + ih * g.W;
      std::fill(row, row + iw0, T(0));
      std::fill(row + iw1, row + g.W, T(0));
    }
    if (iw1 > iw0)
      transpose(dxh + (i * pd.W + j0) * C, C, iw1 - iw0, C, dx + ih * g.W + iw0, HW);
  }
}

// Where output pixel u of `images` consecutive images starts its window in their
// channels-last padded copies (C channels, images `plane` elements apart):
// the rows of the direct paths' tap_gemm.
std::vector<int64_t> window_starts(const ConvGeometry& g, const Padded& pd, int64_t C,
                                   int64_t images, int64_t plane) {
  std::vector<int64_t> window(static_cast<size_t>(images * g.P * g.Q));
  for (int64_t i = 0; i < images; ++i)
    for (int64_t p = 0; p < g.P; ++p)
      for (int64_t q = 0; q < g.Q; ++q)
        window[(i * g.P + p) * g.Q + q] =
            i * plane + (p * g.stride_h * pd.W + q * g.stride_w) * C;
  return window;
}

// The kernel taps as runs of a channels-last padded image (C channels): with
// dil_w == 1 the taps of one kernel row are contiguous, so (s, c) makes one run
// of S*C and there are only R taps; otherwise R*S taps of C. tap[t] is where
// tap t starts relative to a window.
struct TapRuns {
  int64_t taps, run;
  std::vector<int64_t> tap;
  TapRuns(const ConvGeometry& g, const Padded& pd, int64_t C) {
    const bool merged = g.dil_w == 1;
    taps = merged ? g.R : g.R * g.S;
    run = merged ? g.S * C : C;
    tap.resize(static_cast<size_t>(taps));
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t r = merged ? t : t / g.S, s = merged ? 0 : t % g.S;
      tap[t] = (r * g.dil_h * pd.W + s * g.dil_w) * C;
    }
  }
};

// The input gradient at any stride, channels last. For a block of output
// pixels, dcol[pixel, (r, s, c)] = sum_k dY^T[pixel, k] * w[k, c, r, s]: one
// gemm_tile against the weight laid out (k, r, s, c); then each pixel's tap
// rows are added into its image's channels-last padded gradient dxh, where
// (dil_w == 1) the S taps of a kernel row and all their channels are one
// contiguous run of S*C' elements, so the scatter is whole-vector adds. Images
// with few output pixels share blocks (a task holds kScatterRows pixels or
// more), so the product is not a sliver. Each image's dxh gets its terms in an
// order fixed by the shapes (blocks, tap chunks, pixels, taps), so any thread
// count gives the same bits.
constexpr int64_t kScatterRows = 96;     // a multiple of every micro-kernel tile height
constexpr int64_t kScatterCols = 16384;  // block x tap-chunk elements: 64 KiB of float

template <typename T>
void backward_input_scatter(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S, CRS = Cg * RS;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, ld = padded_channels(CRS);
  const Padded pd(g);
  const int64_t plane = pd.plane() * Cg;  // one image's dxh
  // B: wt[grp, k, (r, s, c)] = w[grp*Kg + k, c, r, s], rows ld apart; the slack
  // covers the micro-kernel reading a last row's final vector in full.
  auto wt = scratch<T>(static_cast<size_t>(g.groups * Kg * ld + kSlack));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t rs = 0; rs < RS; ++rs) wt[k * ld + rs * Cg + c] = w[(k * Cg + c) * RS + rs];
  const TapRuns taps_of(g, pd, Cg);
  const int64_t taps = taps_of.taps, run = taps_of.run;
  const int64_t images = std::clamp<int64_t>((kScatterRows + PQ - 1) / PQ, 1,
                                             std::max<int64_t>(g.N, 1));
  const std::vector<int64_t> window = window_starts(g, pd, Cg, images, plane);
  const int64_t pixels = images * PQ;  // of a full task
  const int64_t block = std::min(kScatterRows, pixels);
  const int64_t chunk = std::clamp<int64_t>(kScatterCols / (block * run), 1, taps);  // taps
  const int64_t chunks = (g.N + images - 1) / images, tasks = chunks * g.groups;
  parallel_for(0, tasks, grain_for(2 * pixels * Kg * CRS), [&](int64_t t0, int64_t t1) {
    auto dxh = scratch<T>(static_cast<size_t>(images * plane));
    auto dyt = scratch<T>(static_cast<size_t>(pixels * Kg));
    auto dcol = scratch<T>(static_cast<size_t>(block * chunk * run));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t grp = task % g.groups, n0 = task / g.groups * images;
      const int64_t n1 = std::min(g.N, n0 + images), count = (n1 - n0) * PQ;
      std::fill(dxh.get(), dxh.get() + (n1 - n0) * plane, T(0));
      for (int64_t n = n0; n < n1; ++n)  // dY^T[pixel, k], images one after another
        transpose(dy + (n * g.groups + grp) * Kg * PQ, PQ, Kg, PQ, dyt.get() + (n - n0) * PQ * Kg,
                  Kg);
      for (int64_t b0 = 0; b0 < count; b0 += block) {
        const int64_t rows = std::min(block, count - b0);
        for (int64_t c0 = 0; c0 < taps; c0 += chunk) {
          const int64_t cn = std::min(chunk, taps - c0), cols = cn * run;
          gemm_tile<T>(rows, cols, Kg, dyt.get() + b0 * Kg, Kg, 1,
                       wt.get() + grp * Kg * ld + c0 * run, ld, dcol.get(), cols, false);
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t u = b0 + i;  // pixel u % PQ of image n0 + u / PQ
            for (int64_t t = 0; t < cn; ++t)
              add_run(dxh.get() + window[u] + taps_of.tap[c0 + t],
                      dcol.get() + (i * cn + t) * run, 1, run);
          }
        }
      }
      for (int64_t n = n0; n < n1; ++n)
        crop_channels_last(g, pd, Cg, dxh.get() + (n - n0) * plane,
                           dx + (n * g.groups + grp) * Cg * HW);
    }
  });
}

// y[img] (+ bias) = the im2col blocks times the weights, 64 pixels at a time.
template <typename T>
void forward_im2col(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, blocks = blocks_of(g);
  const Padded pd(g);
  const int64_t tasks = g.N * g.groups * blocks;
  parallel_for(0, tasks, grain_for(2 * Kg * CRS * kBlock), [&](int64_t t0, int64_t t1) {
    auto xp = scratch<T>(static_cast<size_t>(Cg * pd.plane() + kSlack));
    auto col = scratch<T>(static_cast<size_t>(CRS * kBlock + kSlack));
    int64_t in_xp = -1;  // which image and group xp holds
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t img = t / blocks, grp = img % g.groups;  // img = n * groups + grp
      const int64_t pq0 = (t % blocks) * kBlock, cols = std::min(kBlock, PQ - pq0);
      if (img != in_xp) {
        pad_planes(g, pd, Cg, x + img * Cg * HW, xp.get());
        in_xp = img;
      }
      im2col(g, pd, xp.get(), pq0, cols, col.get(), kBlock);
      T* out = y + img * Kg * PQ + pq0;
      gemm_tile<T>(Kg, cols, CRS, w + grp * Kg * CRS, CRS, 1, col.get(), kBlock, out, PQ, false);
      if (bias != nullptr)
        for (int64_t k = 0; k < Kg; ++k)
          for (int64_t j = 0; j < cols; ++j) out[k * PQ + j] += bias[grp * Kg + k];
    }
  });
}

// The direct paths' copy of one image: channels last, zero-padded,
// xh[(i * pd.W + j) * C + c] = x[c, i - pad_h, j - pad_w], so a window's channels
// and neighbouring taps are contiguous. As with pad_planes the border is never
// written: a buffer zeroed once serves every image.
template <typename T>
void pad_channels_last(const ConvGeometry& g, const Padded& pd, int64_t C, const T* x, T* xh) {
  const int64_t i0 = std::clamp<int64_t>(g.pad_h, 0, pd.H);
  const int64_t i1 = std::clamp<int64_t>(g.pad_h + g.H, i0, pd.H);
  const int64_t j0 = std::clamp<int64_t>(g.pad_w, 0, pd.W);
  const int64_t j1 = std::clamp<int64_t>(g.pad_w + g.W, j0, pd.W);
  for (int64_t i = i0; i < i1; ++i)
    transpose(x + (i - g.pad_h) * g.W + (j0 - g.pad_w), g.H * g.W, C, j1 - j0,
              xh + (i * pd.W + j0) * C, C);
}

// The direct convolution: for a block of output pixels, yt[pixel, k] =
// sum over taps r, s and channels c of xh[window(pixel) + tap(r, s) + c] * wt[g, r, s, c, k],
// one tap_gemm reading the padded image in place; then yt is transposed into y.
// With dil_w == 1 the taps of one kernel row are contiguous in xh, so (s, c)
// makes one run of S*C' and there are only R taps.
template <typename T>
void forward_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S, CRS = Cg * RS;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, Kp = padded_channels(Kg);
  const Padded pd(g);
  const TapRuns taps(g, pd, Cg);
  // B: wt[g, r, s, c, k] = w[g*Kg + k, c, r, s], packed for tap_gemm_packed as RS
  // taps of Cg rows (the same layout as taps.taps taps of taps.run rows).
  const int64_t packed = packed_b_size<T>(Kg, taps.run, taps.taps);
  auto wt = scratch_unfilled<T>(static_cast<size_t>(g.groups * packed));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    pack_b(Kg, Cg, RS, w + grp * Kg * CRS, 1, RS, CRS, wt.get() + grp * packed);
  // Pixels per block: a multiple of every tile height, yt within 32 KiB (L1) but
  // at least 96 rows, so that each panel of B (the weights) is reused by enough
  // row tiles. Images with fewer output pixels than that are taken several at a
  // time (a chunk), their pixels one after another in the same block: late
  // layers (8x8, 4x4) and a transposed convolution's input gradient would
  // otherwise stream the whole weight for a sliver of pixels. Several images per
  // chunk are rounded up to a power of two, one block: batches are mostly powers
  // of two, so then every chunk is full and the tasks split evenly over the
  // threads (6 images of 4x4 made 11 tasks of a batch of 64, the last one short,
  // 6 and 5 of them for two threads; 256 -> 512 from 8x8 at 2 threads measured
  // 23.6-24.3 -> 21.3-22.7 ms).
  const int64_t most = 24 * std::max<int64_t>(4, 8192 / (24 * Kp));
  int64_t images = PQ >= most ? 1 : most / PQ, rounded = 1;
  while (images > 1 && rounded < images) rounded *= 2;
  images = std::clamp<int64_t>(rounded, 1, std::max<int64_t>(g.N, 1));
  const int64_t chunk_pixels = images * PQ, plane = pd.plane() * Cg;
  const int64_t block = images > 1 ? chunk_pixels : std::min(most, chunk_pixels);
  const int64_t blocks = (chunk_pixels + block - 1) / block;
  const int64_t chunks = (g.N + images - 1) / images, tasks = chunks * g.groups * blocks;
  // A 1x1 layer at stride 1 without padding reads x in place: pixel u of the chunk's
  // image i starts its window at i * C * HW + pq, and its channels lie HW apart
  // (the product's A column stride), so it needs no channels-last copy. Measured
  // 4-13% faster forward and input gradient on MobileNet's 16x16 to 4x4 layers
  // (2 threads), slower at 32x32, where a column's channels are 4 KiB apart.
  const bool in_place = pointwise(g) && HW <= 256;
  std::vector<int64_t> window = window_starts(g, pd, Cg, images, plane);
  if (in_place)
    for (int64_t u = 0; u < images * PQ; ++u) window[u] = u / PQ * g.C * HW + u % PQ;
  parallel_for(0, tasks, grain_for(2 * Kg * CRS * block), [&](int64_t t0, int64_t t1) {
    auto xh = scratch<T>(static_cast<size_t>(in_place ? 0 : images * plane));
    auto yt = scratch<T>(static_cast<size_t>(block * Kp));
    int64_t in_xh = -1;  // which chunk and group xh holds
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t held = t / blocks;  // = chunk * groups + grp
      const int64_t grp = held % g.groups, n0 = held / g.groups * images;
      const int64_t count = (std::min(g.N, n0 + images) - n0) * PQ;  // the chunk's pixels
      const int64_t px0 = (t % blocks) * block;
      if (px0 >= count) continue;  // the last chunk has fewer images
      const int64_t cols = std::min(block, count - px0);
      if (!in_place && held != in_xh) {
        for (int64_t n = n0; n * PQ < n0 * PQ + count; ++n)
          pad_channels_last(g, pd, Cg, x + (n * g.groups + grp) * Cg * HW,
                            xh.get() + (n - n0) * plane);
        in_xh = held;
      }
      const T* a = in_place ? x + (n0 * g.groups + grp) * Cg * HW : xh.get();
      tap_gemm_packed<T>(cols, Kg, taps.run, taps.taps, a, window.data() + px0,
                         taps.tap.data(), in_place ? HW : 1, wt.get() + grp * packed, yt.get(),
                         Kp, false);
      for (int64_t u = px0; u < px0 + cols;) {  // the block's pixels, image by image
        const int64_t n = n0 + u / PQ, pq = u % PQ, len = std::min(PQ - pq, px0 + cols - u);
        T* out = y + (n * g.groups + grp) * Kg * PQ + pq;
        transpose(yt.get() + (u - px0) * Kp, Kp, len, Kg, out, PQ);
        if (bias != nullptr)
          for (int64_t k = 0; k < Kg; ++k)
            for (int64_t i = 0; i < len; ++i) out[k * PQ + i] += bias[grp * Kg + k];
        u += len;
      }
    }
  });
}

#if KILN_FLOAT_VEC
using simd::kLanes;
using simd::Vec;

// The forward convolution with output pixels along the vector lanes, float32 at
// stride 1, for layers with few output channels per group (6 or 16: LeNet's, the
// first ResNet stage's, and the input gradient onto few channels run as a forward),
// where channels along the lanes would leave lanes idle or pay two transposes per
// image. On the padded grid (pixel u = p * pd.W + q for q < pd.W; the columns
// q >= Q are computed and dropped), tap (r, s) of pixel u reads the padded plane
// at u + off[t], off[t] = r * dil_h * pd.W + s * dil_w, so the pixels of one vector
// read contiguous inputs for every tap and channel:
//   yg[k, u] = sum_{c, t} wp[k-block, c, t, k] * xp[c, u + off[t]]
// A tile keeps MR output channels by NV vectors of pixels in registers across all
// C'*R*S terms: NV loads and MR broadcasts make MR * NV multiply-adds. Each output
// is one fixed-order sum, so every thread count gives the same bits.
#ifdef __AVX512F__
constexpr int kPixelRows = 8;  // 8 x 3 or 6 x 4 accumulators beside the loads: 32 registers
template <int MR>
constexpr int pixel_vectors() { return MR <= 6 ? 4 : 3; }
#else
constexpr int kPixelRows = 4;  // 4 x 3 accumulators beside 3 loads and a broadcast: 16
template <int MR>
constexpr int pixel_vectors() { return 3; }
#endif

template <int MR>
void pixel_tile(const float* xp, int64_t plane, int64_t C, const int64_t* off, int64_t taps,
                const float* wp, float* yg, int64_t ldy) {
  constexpr int NV = pixel_vectors<MR>();
  Vec acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = simd::zero();
  for (int64_t c = 0; c < C; ++c, xp += plane)
    for (int64_t t = 0; t < taps; ++t, wp += MR) {
      const float* in = xp + off[t];
      Vec xv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) xv[j] = simd::load(in + j * kLanes);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const Vec wv = simd::broadcast(wp[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = simd::fmadd(wv, xv[j], acc[i][j]);
      }
    }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) simd::store(yg + i * ldy + j * kLanes, acc[i][j]);
}

using PixelTile = void (*)(const float*, int64_t, int64_t, const int64_t*, int64_t, const float*,
                           float*, int64_t);
template <int... R>
constexpr std::array<PixelTile, sizeof...(R)> pixel_tiles(std::integer_sequence<int, R...>) {
  return {&pixel_tile<R + 1>...};
}
const auto kPixelTiles = pixel_tiles(std::make_integer_sequence<int, kPixelRows>());
// Pixels per tile for each MR.
template <int... R>
constexpr std::array<int64_t, sizeof...(R)> pixel_widths(std::integer_sequence<int, R...>) {
  return {int64_t(pixel_vectors<R + 1>()) * kLanes...};
}
constexpr auto kPixelWidths = pixel_widths(std::make_integer_sequence<int, kPixelRows>());

// Output channels split into equal blocks of at most kPixelRows (the weights
// zero-padded to blocks * rows).
struct PixelBlocks {
  int64_t blocks, rows;
  explicit PixelBlocks(int64_t K)
      : blocks((K + kPixelRows - 1) / kPixelRows), rows((K + blocks - 1) / blocks) {}
};

// Whether forward_pixels beats forward_direct: the share of useful lanes, pixels
// along them (Q of the grid's pd.W columns, K' of the blocks' rows) against channels
// along them (K' of K' rounded up to whole vectors, less the two transposes,
// measured at about an eighth of a 16-channel layer's time; from 32 channels on
// the direct path measured as fast). A tile needs a few output channels to share
// its loads: depthwise layers keep their own rows (forward_depthwise), except a
// single input channel with several outputs (LeNet's first layer), which is an
// ordinary small layer.
bool pixels_pay(const ConvGeometry& g) {
  const int64_t Kg = g.K / g.groups;
  if (g.stride_h != 1 || g.stride_w != 1 || Kg < 4 || Kg > 16) return false;
  const PixelBlocks kb(Kg);
  const double grid = double(g.Q) / double((g.Q - 1) + (g.S - 1) * g.dil_w + 1);
  const double pixels = grid * double(Kg) / double(kb.blocks * kb.rows);
  const double channels = 0.88 * double(Kg) / double(padded_channels(Kg));
  return pixels > channels;
}

void forward_pixels(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                    float* y) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W;
  const Padded pd(g);
  const PixelBlocks kb(Kg);
  const int mr = static_cast<int>(kb.rows);
  const int64_t width = kPixelWidths[mr - 1];
  const int64_t tiles = (g.P * pd.W + width - 1) / width, ldy = tiles * width;
  std::vector<int64_t> off(static_cast<size_t>(RS));
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) off[r * g.S + s] = r * g.dil_h * pd.W + s * g.dil_w;
  // wp[grp, block, c, t, i] = w[grp*Kg + block*rows + i, c, t], zero past Kg.
  const int64_t block_size = Cg * RS * kb.rows;
  auto wp = scratch<float>(static_cast<size_t>(g.groups * kb.blocks * block_size));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t ct = 0; ct < Cg * RS; ++ct)
        wp[(grp * kb.blocks + k / kb.rows) * block_size + ct * kb.rows + k % kb.rows] =
            w[(grp * Kg + k) * Cg * RS + ct];
  // The last tile reads up to `width` pixels past the grid's end in the last plane.
  const int64_t xp_size = Cg * pd.plane() + off.back() + width + kSlack;
  const PixelTile tile = kPixelTiles[mr - 1];
  parallel_for(0, g.N * g.groups, grain_for(2 * Kg * Cg * RS * PQ), [&](int64_t t0, int64_t t1) {
    auto xp = scratch<float>(static_cast<size_t>(xp_size));
    auto yg = scratch<float>(static_cast<size_t>(kb.blocks * kb.rows * ldy));
    for (int64_t img = t0; img < t1; ++img) {  // img = n * groups + grp
      const int64_t grp = img % g.groups;
      pad_planes(g, pd, Cg, x + img * Cg * HW, xp.get());
      for (int64_t u = 0; u < tiles; ++u)
        for (int64_t b = 0; b < kb.blocks; ++b)
          tile(xp.get() + u * width, pd.plane(), Cg, off.data(), RS,
               wp.get() + (grp * kb.blocks + b) * block_size, yg.get() + b * kb.rows * ldy + u * width,
               ldy);
      for (int64_t k = 0; k < Kg; ++k) {
        const float b = bias != nullptr ? bias[grp * Kg + k] : 0.0f;
        for (int64_t p = 0; p < g.P; ++p) {
          const float* from = yg.get() + k * ldy + p * pd.W;
          float* to = y + (img * Kg + k) * PQ + p * g.Q;
          for (int64_t q = 0; q < g.Q; ++q) to[q] = from[q] + b;
        }
      }
    }
  });
}

// A 1x1 layer on planes of whole vectors, pixels along the lanes: per image and
// group, Y[k, pixel] = sum_c W[k, c] X[c, pixel] is one gemm_tile with W's elements
// broadcast (A, rows Cg apart) against rows of the NCHW image itself (B, HW
// apart), written straight into the NCHW output: no channels-last copies either
// way. The input gradient of such a layer runs here too (as a forward). From 512
// pixels a plane (2 threads, best of 10: DenseNet's 60 -> 48 at 32x32 forward 4.2 ->
// 2.9 ms, input gradient 3.8 -> 2.9; MobileNet's 32 -> 64 input gradient 6.0 -> 4.8);
// at 16x16 the channels-last paths measured as fast or faster.
constexpr int64_t kPointwisePixels = 512;

bool pointwise_pixels_pay(const ConvGeometry& g) {
  const int64_t HW = g.H * g.W;
  return pointwise(g) && HW % kLanes == 0 && HW >= kPointwisePixels && g.N > 0;
}

void forward_pointwise_pixels(const ConvGeometry& g, const float* x, const float* w,
                              const float* bias, float* y) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, HW = g.H * g.W;
  parallel_for(0, g.N * g.groups, grain_for(2 * Kg * Cg * HW), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {  // t = n * groups + grp
      const int64_t grp = t % g.groups;
      float* out = y + t * Kg * HW;
      gemm_tile<float>(Kg, HW, Cg, w + grp * Kg * Cg, Cg, 1, x + t * Cg * HW, HW, out, HW,
                       false);
      if (bias != nullptr)
        for (int64_t k = 0; k < Kg; ++k) {
          const float b = bias[grp * Kg + k];
          for (int64_t i = 0; i < HW; ++i) out[k * HW + i] += b;
        }
    }
  });
}
#endif  // a float vector (simd.h)

// The weight gradients sum over images (and pixels), and that sum must round
// the same at any thread count: its terms are grouped by the problem alone
// (FixedChunks of images, each summed in order into its own partial gradient),
// and the partials are added in chunk order (OrderedSum). Partials cost memory
// traffic and bookkeeping, so there are few of them: together no larger than
// the inputs x and dy they are computed from (adding them costs less than a
// pass over the inputs), except that kCachedPartBytes of them (cache-resident,
// cheap) are always allowed; each with at least kGrainFlops of work; and no
// more than kMaxParts (4 per thread of an 8-thread pool; larger pools split
// rows instead) or kPartBytes.
constexpr int64_t kCachedPartBytes = int64_t(256) << 10;
constexpr int64_t kMaxParts = 32;
constexpr int64_t kPartBytes = int64_t(16) << 20;

template <typename T>
int64_t max_parts(const ConvGeometry& g, int64_t part_size) {
  const int64_t inputs = g.N * (g.C * g.H * g.W + g.K * g.P * g.Q);
  const int64_t flops = 2 * g.N * g.K * (g.C / g.groups) * g.R * g.S * g.P * g.Q;
  const int64_t bytes = std::max<int64_t>(part_size * static_cast<int64_t>(sizeof(T)), 1);
  const int64_t by_inputs = inputs / std::max<int64_t>(part_size, 1);
  const int64_t by_cache = kCachedPartBytes / bytes;
  const int64_t most = std::min({kMaxParts, kPartBytes / bytes, flops / kGrainFlops});
  return std::clamp<int64_t>(std::max(by_inputs, by_cache), 1, std::max<int64_t>(most, 1));
}

// dw (K, C/G, R, S) from the summed dW^T[g, c*R*S + r*S + s, k] (output channels
// padded to Kp).
template <typename T>
void transpose_weight_grad(const ConvGeometry& g, const T* total, int64_t Kp, T* dw) {
  const int64_t Kg = g.K / g.groups, CRS = g.C / g.groups * g.R * g.S;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    transpose(total + grp * CRS * Kp, Kp, CRS, Kg, dw + grp * Kg * CRS, CRS);
}

// dW^T[g, crs, k] += im2col block . dY^T block, 64 pixels at a time; the tasks
// (image, block) reduced in fixed chunks (parallel_reduce).
template <typename T>
void backward_weight_im2col(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, CRS = Cg * g.R * g.S;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, blocks = blocks_of(g);
  const int64_t Kp = padded_channels(Kg), size = g.groups * CRS * Kp;
  const Padded pd(g);
  auto total = scratch<T>(static_cast<size_t>(size));
  parallel_reduce<T>(
      g.N * blocks, grain_for(2 * g.K * CRS * kBlock),
      max_parts<T>(g, size), size, total.get(),
      [&](int64_t t0, int64_t t1, T* part) {
        auto xp = scratch<T>(static_cast<size_t>(g.C * pd.plane() + kSlack));
        auto col = scratch<T>(static_cast<size_t>(CRS * kBlock + kSlack));
        auto dyt = scratch<T>(static_cast<size_t>(kBlock * Kp));  // padding stays zero
        int64_t in_xp = -1;  // which image xp holds
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t n = t / blocks, pq0 = (t % blocks) * kBlock;
          const int64_t cols = std::min(kBlock, PQ - pq0);
          if (n != in_xp) {
            pad_planes(g, pd, g.C, x + n * g.C * HW, xp.get());
            in_xp = n;
          }
          for (int64_t grp = 0; grp < g.groups; ++grp) {
            im2col(g, pd, xp.get() + grp * Cg * pd.plane(), pq0, cols, col.get(), kBlock);
            const T* dyg = dy + (n * g.K + grp * Kg) * PQ + pq0;
            for (int64_t k = 0; k < Kg; ++k)
              for (int64_t j = 0; j < cols; ++j) dyt[j * Kp + k] = dyg[k * PQ + j];
            gemm_tile<T>(CRS, Kg, cols, col.get(), kBlock, 1, dyt.get(), Kp,
                         part + grp * CRS * Kp, Kp, true);
          }
        }
      });
  transpose_weight_grad(g, total.get(), Kp, dw);
}

// The direct weight gradient, per image and group:
// dW^T[g, (c, r, s), k] += sum over output pixels (p, q) of
// xh[window(p, q) + tap(r, s) + c] * dY^T[p*Q + q, k], one tap_gemm whose rows
// are the (c, r, s) and whose "taps" are the output rows p, reading the
// channels-last padded image in place.
//
// Work is split two ways, both fixed by the problem: images into FixedChunks,
// each with its own partial dW^T summed over its images in order, and the rows
// (c, r, s) of each group into blocks, so that a layer with a large weight (few
// partials fit) still has enough tasks for the pool. A task is (image chunk,
// group, row block); tap_gemm computes every row on its own, so row blocks that
// one thread gets together run as one call, and give the same bits.
template <typename T>
void backward_weight_direct(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S, CRS = Cg * RS;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W, Kp = padded_channels(Kg);
  const int64_t size = g.groups * CRS * Kp;
  if (g.N == 0) {  // no image writes the partials: the sum is empty
    std::fill(dw, dw + g.K * CRS, T(0));
    return;
  }
  const Padded pd(g);
  // Images per tap_gemm call: with small planes one image's sum is short (16 terms
  // at 4x4), and the call reads and writes the partial dW^T (1 MiB at 512 -> 512)
  // for it; `batch` images' output rows are taps of one call, so the partial is
  // passed over once per kBatchPixels pixels or more.
  constexpr int64_t kBatchPixels = 128;
  const int64_t batch = std::clamp<int64_t>(kBatchPixels / std::max<int64_t>(PQ, 1), 1, g.N);
  const int64_t plane = pd.plane() * g.C;  // one image's xh
  std::vector<int64_t> crs(static_cast<size_t>(CRS)), out_row(static_cast<size_t>(batch * g.P));
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        crs[(c * g.R + r) * g.S + s] = (r * g.dil_h * pd.W + s * g.dil_w) * g.C + c;
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t p = 0; p < g.P; ++p)
      out_row[i * g.P + p] = i * plane + p * g.stride_h * pd.W * g.C;

  constexpr int64_t kTasks = 64;    // enough for a pool of 16 threads, 4 tasks each
  constexpr int64_t kMinRows = 48;  // rows per block: a few micro-kernel tiles
  const FixedChunks images = fixed_chunks(g.N, 1, max_parts<T>(g, size));
  const int64_t want_blocks = (kTasks + images.count * g.groups - 1) / (images.count * g.groups);
  const int64_t rows_per_block =
      std::max((CRS + want_blocks - 1) / want_blocks, std::min(kMinRows, CRS));
  const int64_t row_blocks = (CRS + rows_per_block - 1) / rows_per_block;
  const int64_t per_chunk = g.groups * row_blocks;  // tasks of one image chunk

  // Each part's rows are written first by its chunk's first image (no zeroing
  // pass: partials are large); only the padding columns k >= Kg need zeros.
  std::unique_ptr<T[]> total(new T[static_cast<size_t>(size)]);
  OrderedSum<T> sum(size, total.get(),
                    std::vector<int64_t>(static_cast<size_t>(images.count), per_chunk),
                    [&](T* part) {
                      if (Kp > Kg)
                        for (int64_t row = 0; row < g.groups * CRS; ++row)
                          std::fill(part + row * Kp + Kg, part + (row + 1) * Kp, T(0));
                    });
  const int64_t task_flops = 2 * Kg * rows_per_block * PQ * (g.N / images.count + 1);
  parallel_for(0, images.count * per_chunk, grain_for(task_flops), [&](int64_t t0, int64_t t1) {
    auto xh = scratch<T>(static_cast<size_t>(batch * plane));
    auto dyt = scratch<T>(static_cast<size_t>(batch * PQ * Kp));  // padding stays zero
    for (int64_t i = t0 / per_chunk; i * per_chunk < t1; ++i) {
      // This range's tasks of image chunk i: (group, row block) pairs [u0, u1).
      const int64_t u0 = std::max(t0, i * per_chunk) - i * per_chunk;
      const int64_t u1 = std::min(t1, (i + 1) * per_chunk) - i * per_chunk;
      T* part = sum.part(i);
      for (int64_t n0 = images.begin(i); n0 < images.end(i); n0 += batch) {
        const int64_t nb = std::min(batch, images.end(i) - n0);
        for (int64_t n = n0; n < n0 + nb; ++n)
          pad_channels_last(g, pd, g.C, x + n * g.C * HW, xh.get() + (n - n0) * plane);
        for (int64_t grp = u0 / row_blocks; grp * row_blocks < u1; ++grp) {
          const int64_t b0 = std::max(u0, grp * row_blocks) - grp * row_blocks;
          const int64_t b1 = std::min(u1, (grp + 1) * row_blocks) - grp * row_blocks;
          const int64_t i0 = b0 * rows_per_block, i1 = std::min(CRS, b1 * rows_per_block);
          for (int64_t n = n0; n < n0 + nb; ++n)
            transpose(dy + (n * g.groups + grp) * Kg * PQ, PQ, Kg, PQ,
                      dyt.get() + (n - n0) * PQ * Kp, Kp);
          tap_gemm<T>(i1 - i0, Kg, g.Q, nb * g.P, xh.get() + grp * Cg, crs.data() + i0,
                      out_row.data(), g.stride_w * g.C, dyt.get(), g.Q * Kp, Kp,
                      part + (grp * CRS + i0) * Kp, Kp, n0 != images.begin(i));
        }
      }
      for (int64_t u = u0; u < u1; ++u) sum.finish(i);
    }
  });
  transpose_weight_grad(g, total.get(), Kp, dw);
}


// A depthwise task's padded input plane with its columns split by their residue
// mod stride_w (phase b holds padded columns b, b + stride_w, ...; one phase at
// stride 1, the plain padded plane), so that for every stride the columns one
// tap reads along an output row are contiguous:
//   padded (i, j) at  i * W + col(j),   col(j) = (j % sw) * H * W + j / sw
//   tap (r, s) of output pixel (p, q) at  (p*stride_h + r*dil_h) * W + tap_col[s] + q,
//   tap_col[s] = col(s * dil_w).
struct PhasePlane {
  int64_t sw, H, W;  // W: columns per phase row
  std::vector<int64_t> tap_col;
  PhasePlane(const ConvGeometry& g, const Padded& pd)
      : sw(g.stride_w), H(pd.H), W((pd.W + g.stride_w - 1) / g.stride_w),
        tap_col(static_cast<size_t>(g.S)) {
    for (int64_t s = 0; s < g.S; ++s) tap_col[s] = col(s * g.dil_w);
  }
  int64_t col(int64_t j) const { return (j % sw) * H * W + j / sw; }
  int64_t size() const { return sw * H * W + kSlack; }  // kSlack: see depthwise_rows
};

#ifdef __AVX512F__
// even[i] = src[2i], odd[i] = src[2i + 1] for the n elements of src: a row split
// into its two stride-2 phases, 32 elements at a time (nothing read or written
// past the row's elements).
inline void deinterleave2(const float* src, int64_t n, float* even, float* odd) {
  const __m512i pick_even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                             2, 0);
  const __m512i pick_odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5,
                                            3, 1);
  for (int64_t m = 0; m < n; m += 32) {
    const int64_t left = n - m;
    const simd::Mask lo = simd::first(left), hi = simd::first(left - 16);
    const __m512 a = simd::load(src + m, lo), b = simd::load(src + m + 16, hi);
    simd::store(even + m / 2, _mm512_permutex2var_ps(a, pick_even, b), simd::first((left + 1) / 2));
    simd::store(odd + m / 2, _mm512_permutex2var_ps(a, pick_odd, b), simd::first(left / 2));
  }
}
#endif

// pad_planes for one plane into a PhasePlane (the same cells written each time,
// so a buffer zeroed once serves every plane).
template <typename T>
void pad_phases(const ConvGeometry& g, const Padded& pd, const PhasePlane& ph, const T* x, T* xp) {
  if (ph.sw == 1) {
    pad_planes(g, pd, 1, x, xp);
    return;
  }
  const int64_t i0 = std::clamp<int64_t>(g.pad_h, 0, pd.H);
  const int64_t i1 = std::clamp<int64_t>(g.pad_h + g.H, i0, pd.H);
  const int64_t j0 = std::clamp<int64_t>(g.pad_w, 0, pd.W);
  const int64_t j1 = std::clamp<int64_t>(g.pad_w + g.W, j0, pd.W);
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    if (ph.sw == 2) {
      // Input column j0 - pad_w + m lands in padded column j0 + m: the even m at
      // col(j0) + m / 2, the odd m at col(j0 + 1) + m / 2 (the other phase).
      float* even = xp + ph.col(j0);
      float* odd = xp + ph.col(j0 + 1);
      for (int64_t i = i0; i < i1; ++i)
        deinterleave2(x + (i - g.pad_h) * g.W + (j0 - g.pad_w), j1 - j0, even + i * ph.W,
                      odd + i * ph.W);
      return;
    }
  }
#endif
  for (int64_t b = 0; b < ph.sw; ++b) {  // phase b: padded columns jb, jb + sw, ...
    const int64_t jb = j0 + ((b - j0 % ph.sw) % ph.sw + ph.sw) % ph.sw;
    if (jb >= j1) continue;
    const int64_t n = (j1 - jb + ph.sw - 1) / ph.sw;
    for (int64_t i = i0; i < i1; ++i)
      copy_run(xp + i * ph.W + ph.col(jb), x + (i - g.pad_h) * g.W + (jb - g.pad_w), ph.sw, n);
  }
}

#if KILN_FLOAT_VEC
// Depthwise rows, float32, read from a PhasePlane (any stride and dilation;
// LeNet's one-channel first layer takes this path too): kRows output rows of
// kLanes pixels stay in registers across all R*S taps, one broadcast weight and
// kRows loads and multiply-adds a tap, where the plain loop loads and stores the
// output row at every tap. The sum's order is the plain loop's (bias, then the
// taps row by row), so both give the same bits. Loads past a row's end read the
// next row or the plane's kSlack spare elements (masked off at the store).
//   y[p, q] = b + sum_{r, s} w[r, s] * xp[p * row_step + r * tap_rows + tap_col[s] + q]
template <int kRows>
void depthwise_rows(const float* xp, int64_t row_step, int64_t tap_rows, int64_t R, int64_t S,
                    const int64_t* tap_col, const float* w, float b, float* y, int64_t Q) {
  for (int64_t q0 = 0; q0 < Q; q0 += kLanes) {
    const simd::Mask keep = simd::first(Q - q0);
    Vec acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = simd::broadcast(b);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const Vec v = simd::broadcast(w[r * S + s]);
        const float* in = xp + r * tap_rows + tap_col[s] + q0;
        for (int i = 0; i < kRows; ++i)
          acc[i] = simd::fmadd(v, simd::load(in + i * row_step), acc[i]);
      }
    for (int i = 0; i < kRows; ++i) simd::store(y + i * Q + q0, acc[i], keep);
  }
}

// The weight gradient with output pixels along the vector lanes, float32 at
// stride 1 (forward_pixels' layout; for layers whose few output channels would
// leave most lanes of the channels-along-lanes path idle):
//   dW[k, c, t] = sum over images and output rows p of the lane-wise products
//                 dy[n, k, p, q..q+L) * xp[n, c, p * pd.W + off[t] + q..q+L)
// A tile keeps MR output channels by NT (channel, tap) pairs in registers over one
// image's rows (the last vector of a row masked, x included, so that no input
// outside the windows is read), then adds its vectors into the image chunk's
// partial, which keeps the lanes apart: sums over images in fixed chunks
// (parallel_reduce), and the lanes of the total added in order at the end, so any
// thread count gives the same bits.
#ifdef __AVX512F__
constexpr int kDotRows = 4, kDotCols = 6;  // 24 accumulators, 4 dy vectors, one x vector
#else
constexpr int kDotRows = 2, kDotCols = 5;  // 10 accumulators, 2 dy vectors, one x vector
#endif

template <int MR, int NT>
void pixel_dot_tile(const float* dy, int64_t PQ, int64_t P, int64_t Q, const float* xp,
                    const int64_t* xo, int64_t row_step, float* part, int64_t ldp) {
  Vec acc[MR][NT];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j) acc[i][j] = simd::zero();
  for (int64_t p = 0; p < P; ++p) {
    const float* d = dy + p * Q;
    const float* in = xp + p * row_step;
    for (int64_t q0 = 0; q0 < Q; q0 += kLanes) {
      const bool full = q0 + kLanes <= Q;
      const simd::Mask keep = simd::first(Q - q0);
      Vec dv[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i)
        dv[i] = full ? simd::load(d + i * PQ + q0) : simd::load(d + i * PQ + q0, keep);
#pragma GCC unroll 6
      for (int j = 0; j < NT; ++j) {
        const Vec xv = full ? simd::load(in + xo[j] + q0) : simd::load(in + xo[j] + q0, keep);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) acc[i][j] = simd::fmadd(dv[i], xv, acc[i][j]);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j) {
      float* dst = part + i * ldp + j * kLanes;
      simd::store(dst, simd::add(simd::load(dst), acc[i][j]));
    }
}

using DotTile = void (*)(const float*, int64_t, int64_t, int64_t, const float*, const int64_t*,
                         int64_t, float*, int64_t);
template <int MR, int... J>
constexpr std::array<DotTile, sizeof...(J)> dot_row(std::integer_sequence<int, J...>) {
  return {&pixel_dot_tile<MR, J + 1>...};
}
template <int... I>
constexpr std::array<std::array<DotTile, kDotCols>, sizeof...(I)> dot_tiles(
    std::integer_sequence<int, I...>) {
  return {dot_row<I + 1>(std::make_integer_sequence<int, kDotCols>())...};
}
const auto kDotTiles = dot_tiles(std::make_integer_sequence<int, kDotRows>());

// Whether backward_weight_pixels beats backward_weight_direct: the share of
// useful lanes, Q of each row's whole vectors against K' of K' rounded up to whole
// vectors (less that path's loss to its transposes and short rows, measured at
// about a quarter on 16-channel layers; from 32 channels on it measured faster
// than this path even with every lane used, except at 1x1, where that path has
// only the transposes to amortize them, as long as the lane-separated partials,
// 16 floats per weight, stay small: (128,32,32,32)->64 measured 39-46 against 55
// GFLOP per CPU-second, (128,64,16,16)->128 70 against 50).
bool pixel_weight_grad_pays(const ConvGeometry& g) {
  const int64_t Kg = g.K / g.groups;
  if (pointwise(g)) return Kg * (g.C / g.groups) <= 4096;
  if (g.stride_h != 1 || g.stride_w != 1 || Kg > 16 || (depthwise(g) && Kg < 4)) return false;
  const double pixels = double(g.Q) / double((g.Q + kLanes - 1) / kLanes * kLanes);
  return pixels > 0.75 * double(Kg) / double(padded_channels(Kg));
}

void backward_weight_pixels(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups, RS = g.R * g.S, CRS = Cg * RS;
  const int64_t PQ = g.P * g.Q, HW = g.H * g.W;
  const Padded pd(g);
  // xo[c * RS + t]: where (channel c, tap t) starts in the padded planes; the
  // masked last vector of a row reads nothing past the planes' end.
  std::vector<int64_t> xo(static_cast<size_t>(CRS));
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        xo[(c * g.R + r) * g.S + s] = c * pd.plane() + r * g.dil_h * pd.W + s * g.dil_w;
  const int64_t ldp = CRS * kLanes, size = g.K * ldp;  // part[k, crs, lane]
  auto total = scratch<float>(static_cast<size_t>(size));
  parallel_reduce<float>(
      g.N, grain_for(2 * Kg * CRS * PQ * g.groups), max_parts<float>(g, size), size, total.get(),
      [&](int64_t n0, int64_t n1, float* part) {
        auto xp = scratch<float>(static_cast<size_t>(Cg * pd.plane() + kSlack));
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t grp = 0; grp < g.groups; ++grp) {
            pad_planes(g, pd, Cg, x + (n * g.groups + grp) * Cg * HW, xp.get());
            for (int64_t k0 = 0; k0 < Kg; k0 += kDotRows) {
              const int64_t mr = std::min<int64_t>(kDotRows, Kg - k0);
              for (int64_t j0 = 0; j0 < CRS; j0 += kDotCols) {
                const int64_t nt = std::min<int64_t>(kDotCols, CRS - j0);
                kDotTiles[mr - 1][nt - 1](dy + ((n * g.groups + grp) * Kg + k0) * PQ, PQ, g.P,
                                          g.Q, xp.get(), xo.data() + j0, pd.W,
                                          part + (grp * Kg + k0) * ldp + j0 * kLanes, ldp);
              }
            }
          }
      });
  for (int64_t i = 0; i < g.K * CRS; ++i) dw[i] = simd::sum_lanes(simd::load(total.get() + i * kLanes));
}
#endif

// 1x1 layers (pointwise, one group) with planes under 16 pixels (MobileNet's 2x2
// layers) as one matrix product over the whole batch, through kiln::gemm (split over
// the pool by blocks of its output, never along the sum, so any thread count gives
// the same bits):
//   forward:          Y[K, (n, p)] = W[K, C] . X[C, (n, p)]
//   input gradient:   dX[C, (n, p)] = W^T . dY[K, (n, p)]
//   weight gradient:  dW[K, C]      = dY[K, (n, p)] . X[C, (n, p)]^T
// X[C, (n, p)] is x (N, C, pixels) with its first two axes swapped (runs of
// `pixels` elements moved). The direct paths' blocks of a few images each stream
// the whole weight (4 MiB at 1024 -> 1024) for a sliver of pixels. From 4x4 on they
// measured faster than this path (2 threads, 512 -> 512 at 4x4: 6.5-7.5 ms against
// 7.1-8.2 a pass; 16x16 layers twice as slow here), at 2x2 slower (1024 -> 1024:
// 8-18 ms against 6.4-10).
bool pointwise_batch_gemm(const ConvGeometry& g) {
  return pointwise(g) && g.groups == 1 && g.H * g.W < 16 && g.N > 0;
}

// dst (B, A, pixels) = src (A, B, pixels) with its first two axes swapped.
template <typename T>
void swap_leading_axes(const T* src, int64_t A, int64_t B, int64_t pixels, T* dst) {
  parallel_for(0, B, grain_for(A * pixels), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t a = 0; a < A; ++a)
        std::copy_n(src + (a * B + b) * pixels, pixels, dst + (b * A + a) * pixels);
  });
}

template <typename T>
std::unique_ptr<T[]> uninitialized(int64_t count) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(count)]);
}

// The forward (transpose_w false: W[K, C] . X) or the input gradient (true: W^T . dY):
// in (N, rows_in, pixels) to out (N, rows_out, pixels), plus bias.
template <typename T>
void pointwise_product(const ConvGeometry& g, const T* in, const T* w, const T* bias, T* out,
                       bool transpose_w) {
  const int64_t pixels = g.H * g.W, cols = g.N * pixels;
  const int64_t rows_in = transpose_w ? g.K : g.C, rows_out = transpose_w ? g.C : g.K;
  auto a = uninitialized<T>(rows_in * cols), b = uninitialized<T>(rows_out * cols);
  swap_leading_axes(in, g.N, rows_in, pixels, a.get());
  gemm(transpose_w, false, rows_out, cols, rows_in, T(1), w, g.C, a.get(), cols, T(0), b.get(),
       cols);
  if (bias != nullptr)
    for (int64_t k = 0; k < rows_out; ++k)
      for (int64_t j = 0; j < cols; ++j) b[k * cols + j] += bias[k];
  swap_leading_axes(b.get(), rows_out, g.N, pixels, out);
}

template <typename T>
void pointwise_weight_grad(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t pixels = g.H * g.W, cols = g.N * pixels;
  auto xs = uninitialized<T>(g.C * cols), dys = uninitialized<T>(g.K * cols);
  swap_leading_axes(x, g.N, g.C, pixels, xs.get());
  swap_leading_axes(dy, g.N, g.K, pixels, dys.get());
  gemm(false, true, g.K, g.C, cols, T(1), dys.get(), cols, xs.get(), cols, T(0), dw, g.C);
}

// Depthwise layers with one output channel per input channel (K == C) whose output
// rows are shorter than a vector: the per-plane paths (forward_depthwise and the
// rest) would leave most lanes idle and pay a task per plane, so these run with
// channels along the lanes instead. A task takes kDwBlock channels of one image
// (of every image, for the weight gradient), transposes their planes into
// channels-last blocks (pixel-major, kDwBlock channels a pixel), and every output
// pixel is then its valid taps' products summed over whole channel vectors, in the
// tap order (r, s) of the plain loops; the result is transposed back. Channels past
// C in the last block compute on stale values and are never written out.
constexpr int64_t kDwBlock = 64;

bool depthwise_channels_last(const ConvGeometry& g) {
  return depthwise(g) && g.K == g.C && g.Q < 16;
}

// The running sums of one pixel's kDwBlock channels, in registers where there is a
// float vector (simd.h), else a plain array.
template <typename T>
struct ChannelSums {
  T v[kDwBlock];
  void set(const T* from) { std::copy_n(from, kDwBlock, v); }
  void fma(const T* a, const T* b) {
    for (int64_t c = 0; c < kDwBlock; ++c) v[c] += a[c] * b[c];
  }
  void store(T* to) const { std::copy_n(v, kDwBlock, to); }
  void add_to(T* to) const {
    for (int64_t c = 0; c < kDwBlock; ++c) to[c] += v[c];
  }
};
#if KILN_FLOAT_VEC
template <>
struct ChannelSums<float> {
  static constexpr int kVecs = kDwBlock / kLanes;
  Vec v[kVecs];
  void set(const float* from) {
#pragma GCC unroll 8
    for (int i = 0; i < kVecs; ++i) v[i] = simd::load(from + i * kLanes);
  }
  void fma(const float* a, const float* b) {
#pragma GCC unroll 8
    for (int i = 0; i < kVecs; ++i)
      v[i] = simd::fmadd(simd::load(a + i * kLanes), simd::load(b + i * kLanes), v[i]);
  }
  void store(float* to) const {
#pragma GCC unroll 8
    for (int i = 0; i < kVecs; ++i) simd::store(to + i * kLanes, v[i]);
  }
  void add_to(float* to) const {
#pragma GCC unroll 8
    for (int i = 0; i < kVecs; ++i)
      simd::store(to + i * kLanes, simd::add(simd::load(to + i * kLanes), v[i]));
  }
};
#endif

// The valid (tap, output pixel, input pixel) triples of a depthwise geometry: tap
// t = r * S + s of output pixel (p, q) reads input pixel (ih, iw) = (p*stride -
// pad + r*dil, ...) when it lies inside the input. Offsets are in channel blocks.
struct DepthwiseTerm {
  int64_t tap, out, in;
};
std::vector<DepthwiseTerm> depthwise_terms(const ConvGeometry& g) {
  std::vector<DepthwiseTerm> terms;
  for (int64_t p = 0; p < g.P; ++p)
    for (int64_t q = 0; q < g.Q; ++q)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s) {
          const int64_t i = p * g.stride_h - g.pad_h + r * g.dil_h;
          const int64_t j = q * g.stride_w - g.pad_w + s * g.dil_w;
          if (i >= 0 && i < g.H && j >= 0 && j < g.W)
            terms.push_back({(r * g.S + s) * kDwBlock, (p * g.Q + q) * kDwBlock,
                             (i * g.W + j) * kDwBlock});
        }
  return terms;
}

// The planes of channels [c0, c0 + cb) of one image (`pixels` each) as a
// channels-last block: block[pixel * kDwBlock + c].
template <typename T>
void planes_to_block(const T* planes, int64_t pixels, int64_t cb, T* block) {
  transpose(planes, pixels, cb, pixels, block, kDwBlock);
}

// The weights (and bias) of every channel block, channels last:
// wt[(b * RS + t) * kDwBlock + c] = w[(b * kDwBlock + c) * RS + t], zero past C.
template <typename T>
Scratch<T> block_weights(const T* w, int64_t C, int64_t RS) {
  auto wt = scratch<T>(static_cast<size_t>((C + kDwBlock - 1) / kDwBlock * RS * kDwBlock));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < RS; ++t)
      wt[((c / kDwBlock) * RS + t) * kDwBlock + c % kDwBlock] = w[c * RS + t];
  return wt;
}

// y = the depthwise convolution of x, or (`adjoint`) its input gradient from dy
// (then x is dy, y is dx, and each input pixel gathers the output pixels whose
// taps read it, with the same weights, in tap order): one task per image and
// channel block.
template <typename T>
void depthwise_blocks(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                      bool adjoint) {
  const int64_t RS = g.R * g.S, blocks = (g.C + kDwBlock - 1) / kDwBlock;
  const int64_t read = adjoint ? g.P * g.Q : g.H * g.W;   // pixels of x's planes
  const int64_t write = adjoint ? g.H * g.W : g.P * g.Q;  // and of y's
  std::vector<DepthwiseTerm> terms = depthwise_terms(g);
  if (adjoint) {  // gathered per input pixel, in tap order
    for (auto& t : terms) std::swap(t.out, t.in);
    std::stable_sort(terms.begin(), terms.end(),
                     [](const DepthwiseTerm& a, const DepthwiseTerm& b) { return a.out < b.out; });
  }
  const auto wt = block_weights(w, g.C, RS);
  auto bias_blocks = scratch<T>(static_cast<size_t>(blocks * kDwBlock));
  if (bias != nullptr) std::copy_n(bias, g.C, bias_blocks.get());
  parallel_for(0, g.N * blocks, grain_for(2 * kDwBlock * RS * write), [&](int64_t t0, int64_t t1) {
    auto in = scratch<T>(static_cast<size_t>(read * kDwBlock));
    auto out = scratch<T>(static_cast<size_t>(write * kDwBlock));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, b = t % blocks, c0 = b * kDwBlock;
      const int64_t cb = std::min(kDwBlock, g.C - c0);
      const T* wb = wt.get() + b * RS * kDwBlock;
      planes_to_block(x + (n * g.C + c0) * read, read, cb, in.get());
      size_t i = 0;
      for (int64_t pixel = 0; pixel < write * kDwBlock; pixel += kDwBlock) {
        ChannelSums<T> acc;
        acc.set(bias_blocks.get() + c0);
        for (; i < terms.size() && terms[i].out == pixel; ++i)
          acc.fma(wb + terms[i].tap, in.get() + terms[i].in);
        acc.store(out.get() + pixel);
      }
      transpose(out.get(), kDwBlock, write, cb, y + (n * g.C + c0) * write, write);
    }
  });
}

// dw[c, r, s] = sum over images and output pixels of dy * the tap's input pixel:
// one task per channel block, over every image in order (no partial sums), so any
// thread count gives the same bits.
template <typename T>
void depthwise_blocks_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t RS = g.R * g.S, blocks = (g.C + kDwBlock - 1) / kDwBlock;
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
  std::vector<DepthwiseTerm> terms = depthwise_terms(g);  // by tap, then output pixel
  std::stable_sort(terms.begin(), terms.end(),
                   [](const DepthwiseTerm& a, const DepthwiseTerm& b) { return a.tap < b.tap; });
  parallel_for(0, blocks, grain_for(2 * kDwBlock * RS * PQ * g.N), [&](int64_t b0, int64_t b1) {
    auto xb = scratch<T>(static_cast<size_t>(HW * kDwBlock));
    auto dyb = scratch<T>(static_cast<size_t>(PQ * kDwBlock));
    auto sum = scratch<T>(static_cast<size_t>(RS * kDwBlock));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t c0 = b * kDwBlock, cb = std::min(kDwBlock, g.C - c0);
      std::fill(sum.get(), sum.get() + RS * kDwBlock, T(0));
      for (int64_t n = 0; n < g.N; ++n) {
        planes_to_block(x + (n * g.C + c0) * HW, HW, cb, xb.get());
        planes_to_block(dy + (n * g.C + c0) * PQ, PQ, cb, dyb.get());
        size_t i = 0;
        for (int64_t tap = 0; tap < RS * kDwBlock; tap += kDwBlock) {
          ChannelSums<T> acc;
          acc.set(sum.get() + tap);
          for (; i < terms.size() && terms[i].tap == tap; ++i)
            acc.fma(dyb.get() + terms[i].out, xb.get() + terms[i].in);
          acc.store(sum.get() + tap);
        }
      }
      for (int64_t c = 0; c < cb; ++c)
        for (int64_t t = 0; t < RS; ++t) dw[(c0 + c) * RS + t] = sum[t * kDwBlock + c];
    }
  });
}

// One task per image and output channel, reading the padded input plane; with a
// spread above 1 the input is first spread out (spread_plane), which makes this
// the strided input gradient (backward_input_depthwise).
template <typename T>
void forward_depthwise(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                       Pair spread = {1, 1}) {
  if (spread == Pair{1, 1} && depthwise_channels_last(g)) {
    depthwise_blocks(g, x, w, bias, y, false);
    return;
  }
  const int64_t Kg = g.K / g.groups, RS = g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W;
  const Padded pd(g);
  const PhasePlane ph(g, pd);  // spread: only at stride 1, where ph is the padded plane
  const int64_t row_step = g.stride_h * ph.W, tap_rows = g.dil_h * ph.W;
  parallel_for(0, g.N * g.K, grain_for(2 * RS * PQ), [&](int64_t t0, int64_t t1) {
    auto xp = scratch<T>(static_cast<size_t>(ph.size()));
    int64_t in_xp = -1;  // which input plane xp holds
    for (int64_t t = t0; t < t1; ++t) {  // t = n * K + k
      const int64_t k = t % g.K, plane = (t / g.K) * g.C + k / Kg;
      if (plane != in_xp) {
        if (spread == Pair{1, 1})
          pad_phases(g, pd, ph, x + plane * HW, xp.get());
        else
          spread_plane(g, pd, spread, x + plane * HW, xp.get());
        in_xp = plane;
      }
#if KILN_FLOAT_VEC
      if constexpr (std::is_same_v<T, float>) {
        const float b = bias != nullptr ? bias[k] : 0.0f;
        int64_t p = 0;
        for (; p + 4 <= g.P; p += 4)
          depthwise_rows<4>(xp.get() + p * row_step, row_step, tap_rows, g.R, g.S,
                            ph.tap_col.data(), w + k * RS, b, y + t * PQ + p * g.Q, g.Q);
        for (; p < g.P; ++p)
          depthwise_rows<1>(xp.get() + p * row_step, row_step, tap_rows, g.R, g.S,
                            ph.tap_col.data(), w + k * RS, b, y + t * PQ + p * g.Q, g.Q);
        continue;
      }
#endif
      for (int64_t p = 0; p < g.P; ++p) {
        T* out = y + t * PQ + p * g.Q;
        std::fill(out, out + g.Q, bias != nullptr ? bias[k] : T(0));
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t s = 0; s < g.S; ++s) {
            const T* in = xp.get() + p * row_step + r * tap_rows + ph.tap_col[s];
            const T v = w[k * RS + r * g.S + s];
            for (int64_t q = 0; q < g.Q; ++q) out[q] += v * in[q];
          }
      }
    }
  });
}

// With one output channel per input channel (K == C), the input gradient is
// itself a depthwise convolution at stride 1: of dy spread out by the stride
// (zeros between its pixels), with the flipped kernel and padding
// dil*(R-1) - pad, so it runs forward_depthwise's vector rows:
//   dx[i, j] = sum_{r, s} w[R-1-r, S-1-s] * spread(dy)[i + r*dil_h, j + s*dil_w].
// Otherwise one task per image and input channel c, scattering each of c's
// output channels back into a padded plane.
template <typename T>
void backward_input_depthwise(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  if (depthwise_channels_last(g)) {
    depthwise_blocks(g, dy, w, static_cast<const T*>(nullptr), dx, true);
    return;
  }
  const int64_t Kg = g.K / g.groups, RS = g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W;
  if (Kg == 1) {
    auto flipped = scratch<T>(static_cast<size_t>(g.K * RS));
    for (int64_t k = 0; k < g.K; ++k) std::reverse_copy(w + k * RS, w + (k + 1) * RS,
                                                        flipped.get() + k * RS);
    ConvGeometry t = g;
    t.H = g.P;
    t.W = g.Q;
    t.P = g.H;
    t.Q = g.W;
    t.stride_h = t.stride_w = 1;
    t.pad_h = g.dil_h * (g.R - 1) - g.pad_h;
    t.pad_w = g.dil_w * (g.S - 1) - g.pad_w;
    forward_depthwise(t, dy, flipped.get(), static_cast<const T*>(nullptr), dx,
                      {g.stride_h, g.stride_w});
    return;
  }
  const Padded pd(g);
  parallel_for(0, g.N * g.C, grain_for(2 * Kg * RS * PQ), [&](int64_t t0, int64_t t1) {
    auto dxp = scratch<T>(static_cast<size_t>(pd.plane()));
    for (int64_t t = t0; t < t1; ++t) {  // t = n * C + c
      std::fill(dxp.get(), dxp.get() + pd.plane(), T(0));
      for (int64_t j = 0; j < Kg; ++j) {
        const int64_t k = (t % g.C) * Kg + j;
        const T* grad = dy + ((t / g.C) * g.K + k) * PQ;
        for (int64_t p = 0; p < g.P; ++p)
          for (int64_t r = 0; r < g.R; ++r)
            for (int64_t s = 0; s < g.S; ++s) {
              T* in = dxp.get() + (p * g.stride_h + r * g.dil_h) * pd.W + s * g.dil_w;
              const T v = w[k * RS + r * g.S + s];
              const T* row = grad + p * g.Q;
              if (g.stride_w == 1)
                for (int64_t q = 0; q < g.Q; ++q) in[q] += v * row[q];
              else
                for (int64_t q = 0; q < g.Q; ++q) in[q * g.stride_w] += v * row[q];
            }
      }
      crop_planes(g, pd, 1, dxp.get(), dx + t * HW);
    }
  });
}

// Calls f(t, k, xp) for the depthwise tasks t = n * K + k in [t0, t1), xp holding
// the padded phases of the input plane that image n's output channel k reads
// (loaded once for the tasks in a row that share it).
template <typename T, typename F>
void over_phase_planes(const ConvGeometry& g, const Padded& pd, const PhasePlane& ph, const T* x,
                       int64_t t0, int64_t t1, F&& f) {
  const int64_t Kg = g.K / g.groups, HW = g.H * g.W;
  auto xp = scratch<T>(static_cast<size_t>(ph.size()));
  int64_t in_xp = -1;  // which input plane xp holds
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t k = t % g.K, plane = (t / g.K) * g.C + k / Kg;
    if (plane != in_xp) {
      pad_phases(g, pd, ph, x + plane * HW, xp.get());
      in_xp = plane;
    }
    f(t, k, static_cast<const T*>(xp.get()));
  }
}

#if KILN_FLOAT_VEC
// The depthwise weight gradient, float32, any stride and dilation (the planes
// read through a PhasePlane, so that every tap's inputs for a row of outputs are
// contiguous): per (image, output channel) plane, pixel_dot_tile with one output
// channel keeps up to kDotCols taps in registers over the whole plane, so dy is
// loaded once per group of taps rather than once per tap, and adds its vectors
// into the chunk's lane-separated partial; the lanes of the total are added in
// order at the end. Chunks of planes are fixed by the problem (parallel_reduce),
// so any thread count gives the same bits.
void depthwise_weight_lanes(const ConvGeometry& g, const float* dy, const float* x, float* dw) {
  const int64_t RS = g.R * g.S, PQ = g.P * g.Q;
  const Padded pd(g);
  const PhasePlane ph(g, pd);
  std::vector<int64_t> xo(static_cast<size_t>(RS));
  for (int64_t r = 0; r < g.R; ++r)
    for (int64_t s = 0; s < g.S; ++s) xo[r * g.S + s] = r * g.dil_h * ph.W + ph.tap_col[s];
  const int64_t ldp = RS * kLanes, size = g.K * ldp;  // part[k, tap, lane]
  auto total = scratch<float>(static_cast<size_t>(size));
  parallel_reduce<float>(
      g.N * g.K, grain_for(2 * RS * PQ), max_parts<float>(g, size), size, total.get(),
      [&](int64_t t0, int64_t t1, float* part) {
        over_phase_planes(g, pd, ph, x, t0, t1, [&](int64_t t, int64_t k, const float* xp) {
          for (int64_t j0 = 0; j0 < RS; j0 += kDotCols) {
            const int64_t nt = std::min<int64_t>(kDotCols, RS - j0);
            kDotTiles[0][nt - 1](dy + t * PQ, PQ, g.P, g.Q, xp, xo.data() + j0,
                                 g.stride_h * ph.W, part + k * ldp + j0 * kLanes, ldp);
          }
        });
      });
  for (int64_t i = 0; i < g.K * RS; ++i)
    dw[i] = simd::sum_lanes(simd::load(total.get() + i * kLanes));
}
#endif

// dw[k, r, s] = sum over images and output pixels of dy * the shifted input:
// per task (image, output channel) a row of products per tap, summed once.
template <typename T>
void backward_weight_depthwise(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  if (depthwise_channels_last(g)) {
    depthwise_blocks_weight(g, dy, x, dw);
    return;
  }
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    depthwise_weight_lanes(g, dy, x, dw);
    return;
  }
#endif
  const int64_t RS = g.R * g.S, PQ = g.P * g.Q;
  const Padded pd(g);
  const PhasePlane ph(g, pd);
  const int64_t row_step = g.stride_h * ph.W, tap_rows = g.dil_h * ph.W;
  parallel_reduce<T>(
      g.N * g.K, grain_for(2 * RS * PQ), max_parts<T>(g, g.K * RS), g.K * RS, dw,
      [&](int64_t t0, int64_t t1, T* part) {
        std::vector<T> products(static_cast<size_t>(g.Q));
        over_phase_planes(g, pd, ph, x, t0, t1, [&](int64_t t, int64_t k, const T* xp) {
          for (int64_t r = 0; r < g.R; ++r)
            for (int64_t s = 0; s < g.S; ++s) {
              const T* in = xp + r * tap_rows + ph.tap_col[s];
              std::fill(products.begin(), products.end(), T(0));
              for (int64_t p = 0; p < g.P; ++p)
                for (int64_t q = 0; q < g.Q; ++q)  // (a dot product would not vectorize)
                  products[q] += dy[t * PQ + p * g.Q + q] * in[p * row_step + q];
              for (T v : products) part[k * RS + r * g.S + s] += v;
            }
        });
      });
}

// A geometry holding the kernel size and window arguments; sizes are the caller's.
ConvGeometry window_geometry(const Shape& weight, Pair stride, Pair padding, Pair dilation,
                             int64_t groups) {
  ConvGeometry g{};
  g.R = weight[2];
  g.S = weight[3];
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.groups = groups;
  return g;
}

}  // namespace

ConvGeometry conv2d_geometry(const char* op, const Shape& input, const Shape& weight,
                             Pair stride, Pair padding, Pair dilation, int64_t groups) {
  check_ranks(op, input, weight, "(out_channels, in_channels / groups, kH, kW)");
  check_args(op, stride, padding, dilation, groups);
  const int64_t C = input[1], K = weight[0];
  KILN_CHECK(C % groups == 0, op, ": input ", shape_str(input), " has ", C,
             " channels, not divisible by groups=", groups);
  KILN_CHECK(K % groups == 0, op, ": weight ", shape_str(weight), " has ", K,
             " output channels, not divisible by groups=", groups);
  KILN_CHECK(weight[1] * groups == C, op, ": input ", shape_str(input), " has ", C,
             " channels but weight ", shape_str(weight), " expects ", weight[1] * groups,
             " (groups=", groups, ")");
  ConvGeometry g = window_geometry(weight, stride, padding, dilation, groups);
  g.N = input[0];
  g.C = C;
  g.H = input[2];
  g.W = input[3];
  g.K = K;
  const int64_t span_h = g.dil_h * (g.R - 1) + 1, span_w = g.dil_w * (g.S - 1) + 1;
  const int64_t padded_h = g.H + 2 * g.pad_h, padded_w = g.W + 2 * g.pad_w;
  KILN_CHECK(span_h <= padded_h && span_w <= padded_w, op, ": kernel ",
             pair_str({g.R, g.S}), " with dilation ", pair_str(dilation), " spans ",
             pair_str({span_h, span_w}), ", larger than the padded input ",
             pair_str({padded_h, padded_w}), " (input ", shape_str(input), ", padding ",
             pair_str(padding), ")");
  g.P = (padded_h - span_h) / g.stride_h + 1;
  g.Q = (padded_w - span_w) / g.stride_w + 1;
  return g;
}

ConvGeometry conv_transpose2d_geometry(const char* op, const Shape& input, const Shape& weight,
                                       Pair stride, Pair padding, Pair output_padding,
                                       Pair dilation, int64_t groups) {
  check_ranks(op, input, weight, "(in_channels, out_channels / groups, kH, kW)");
  check_args(op, stride, padding, dilation, groups);
  for (int i = 0; i < 2; ++i)
    KILN_CHECK(output_padding[i] >= 0 &&
                   (output_padding[i] < stride[i] || output_padding[i] < dilation[i]),
               op, ": output_padding must be non-negative and smaller than either stride or "
               "dilation, got output_padding ", pair_str(output_padding), ", stride ",
               pair_str(stride), ", dilation ", pair_str(dilation));
  const int64_t Cin = input[1];
  KILN_CHECK(Cin % groups == 0, op, ": input ", shape_str(input), " has ", Cin,
             " channels, not divisible by groups=", groups);
  KILN_CHECK(weight[0] == Cin, op, ": input ", shape_str(input), " has ", Cin,
             " channels but weight ", shape_str(weight), " expects ", weight[0],
             " (groups=", groups, ")");
  KILN_CHECK(input[2] >= 1 && input[3] >= 1, op, ": input ", shape_str(input),
             " has an empty spatial size");
  ConvGeometry g = window_geometry(weight, stride, padding, dilation, groups);
  g.N = input[0];
  g.C = weight[1] * groups;
  g.K = Cin;
  g.P = input[2];
  g.Q = input[3];
  g.H = (g.P - 1) * g.stride_h - 2 * g.pad_h + g.dil_h * (g.R - 1) + output_padding[0] + 1;
  g.W = (g.Q - 1) * g.stride_w - 2 * g.pad_w + g.dil_w * (g.S - 1) + output_padding[1] + 1;
  // An empty output is allowed, as in PyTorch; a negative one is not.
  KILN_CHECK(g.H >= 0 && g.W >= 0, op, ": output size ", pair_str({g.H, g.W}),
             " is negative for input ", shape_str(input), ", weight ", shape_str(weight),
             ", stride ", pair_str(stride), ", padding ", pair_str(padding), ", dilation ",
             pair_str(dilation), ", output_padding ", pair_str(output_padding));
  return g;
}

void check_shape(const char* op, const char* name, const Shape& got, const Shape& want) {
  KILN_CHECK(got == want, op, ": expected ", name, " of shape ", shape_str(want), ", got ",
             shape_str(got));
}

// Whether the direct paths (tap_gemm reading the image in place) beat im2col
// blocks: they need the fast micro-kernel, and with only 8 lanes and 16
// registers (AVX2) OpenBLAS's packed kernels win once a layer has 64 or more
// output channels (measured on a 2-core AMD EPYC: (64,64,32,32,64) 3x3 forward
// 56 ms through OpenBLAS against 64 ms direct, weight gradient 66 against 86;
// LeNet's 6 -> 16 layer 2.0 against 0.65 ms the other way).
template <typename T>
bool direct_pays(int64_t out_channels) {
  if constexpr (!has_fast_tile<T>()) return false;
  return simd::kLanes >= 16 || out_channels < 64;
}

// A 1x1 layer at a stride above 1 without padding (a ResNet's projection shortcut)
// reads only every stride-th pixel: it is the stride-1 1x1 layer on the subsampled
// input xs (N, C, P, Q), xs[n, c, p, q] = x[n, c, p * stride_h, q * stride_w], and
// its input gradient is that layer's, spread back onto the strided pixels (zero
// elsewhere). So it takes the stride-1 paths (pixels along the lanes, products on
// NCHW) on a quarter of the pixels, rather than the strided direct paths.
bool strided_pointwise(const ConvGeometry& g) {
  return g.R == 1 && g.S == 1 && (g.stride_h > 1 || g.stride_w > 1) && g.pad_h == 0 &&
         g.pad_w == 0 && g.P > 0 && g.Q > 0;
}

ConvGeometry subsampled(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.H = g.P;
  t.W = g.Q;
  t.stride_h = t.stride_w = 1;
  return t;
}

// xs[n, c, p, q] = x[n, c, p * stride_h, q * stride_w] (pixels of a 1x1 layer's windows).
template <typename T>
void subsample(const ConvGeometry& g, const T* x, T* xs) {
  const int64_t HW = g.H * g.W;
  parallel_for(0, g.N * g.C, rows_per_grain(HW), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)  // r = n * C + c
      for (int64_t p = 0; p < g.P; ++p) {
        const T* row = x + r * HW + p * g.stride_h * g.W;
        for (int64_t q = 0; q < g.Q; ++q) xs[(r * g.P + p) * g.Q + q] = row[q * g.stride_w];
      }
  });
}

// The adjoint: dx = dxs on the strided pixels, zero on the others.
template <typename T>
void spread_subsampled(const ConvGeometry& g, const T* dxs, T* dx) {
  const int64_t HW = g.H * g.W, PQ = g.P * g.Q;
  parallel_for(0, g.N * g.C, rows_per_grain(HW), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* plane = dx + r * HW;
      std::fill(plane, plane + HW, T(0));
      for (int64_t p = 0; p < g.P; ++p) {
        T* row = plane + p * g.stride_h * g.W;
        for (int64_t q = 0; q < g.Q; ++q) row[q * g.stride_w] = dxs[r * PQ + p * g.Q + q];
      }
    }
  });
}

template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  if (strided_pointwise(g)) {
    auto xs = scratch_unfilled<T>(static_cast<size_t>(g.N * g.C * g.P * g.Q));
    subsample(g, x, xs.get());
    conv2d_forward(subsampled(g), xs.get(), w, bias, y);
    return;
  }
  if (pointwise_batch_gemm(g)) {
    pointwise_product(g, x, w, bias, y, false);
    return;
  }
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_pays(g) && conv2d_forward_winograd(g, x, w, bias, y)) return;
    if (pointwise_pixels_pay(g)) {
      forward_pointwise_pixels(g, x, w, bias, y);
      return;
    }
    if (pixels_pay(g)) {
      forward_pixels(g, x, w, bias, y);
      return;
    }
  }
#endif
  if (depthwise(g))
    forward_depthwise(g, x, w, bias, y);
  else if (direct_pays<T>(g.K / g.groups))
    forward_direct(g, x, w, bias, y);
  else
    forward_im2col(g, x, w, bias, y);
}

template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  if (strided_pointwise(g)) {
    auto dxs = scratch_unfilled<T>(static_cast<size_t>(g.N * g.C * g.P * g.Q));
    conv2d_backward_input(subsampled(g), dy, w, dxs.get());
    spread_subsampled(g, dxs.get(), dx);
    return;
  }
  if (pointwise_batch_gemm(g)) {
    pointwise_product(g, dy, w, static_cast<const T*>(nullptr), dx, true);
    return;
  }
  // As a forward convolution its output channels are the C/G input channels:
  // with few of them the channels-along-lanes direct path would leave most vector
  // lanes idle, unless that forward puts pixels along the lanes.
  const int64_t Cg = g.C / g.groups;
  const int64_t lanes = simd::kLanes;
  bool few_channels = has_fast_tile<T>() && 4 * Cg < 3 * ((Cg + lanes - 1) / lanes * lanes);
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>)
    few_channels = few_channels && !pixels_pay(input_gradient_as_forward(g)) &&
                   !winograd_pays(input_gradient_as_forward(g)) &&
                   !pointwise_pixels_pay(input_gradient_as_forward(g));
#endif
  if (depthwise(g))
    backward_input_depthwise(g, dy, w, dx);
  else if (g.stride_h == 1 && g.stride_w == 1 && !few_channels)
    backward_input_as_forward(g, dy, w, dx);
  else
    backward_input_scatter(g, dy, w, dx);
}

template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  if (strided_pointwise(g)) {
    auto xs = scratch_unfilled<T>(static_cast<size_t>(g.N * g.C * g.P * g.Q));
    subsample(g, x, xs.get());
    conv2d_backward_weight(subsampled(g), dy, xs.get(), dw);
    return;
  }
  if (pointwise_batch_gemm(g)) {
    pointwise_weight_grad(g, dy, x, dw);
    return;
  }
#if KILN_FLOAT_VEC
  if constexpr (std::is_same_v<T, float>) {
    if (winograd_pays(g) && conv2d_backward_weight_winograd(g, dy, x, dw)) return;
    if (pixel_weight_grad_pays(g)) {
      // At 1x1 without padding an image's pixels make one long row.
      ConvGeometry flat = g;
      if (pointwise(g)) {
        flat.W = flat.Q = g.H * g.W;
        flat.H = flat.P = 1;
      }
      backward_weight_pixels(flat, dy, x, dw);
      return;
    }
  }
#endif
  if (depthwise(g))
    backward_weight_depthwise(g, dy, x, dw);
  else if (direct_pays<T>(g.K / g.groups))
    backward_weight_direct(g, dy, x, dw);
  else
    backward_weight_im2col(g, dy, x, dw);
}

template <typename T>
void channel_sum(int64_t N, int64_t C, int64_t pixels, const T* dy, T* db) {
  parallel_for(0, C, grain_for(N * pixels), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // 16 running sums: vectorizes, and keeps float rounding error small.
      T lanes[16] = {};
      for (int64_t n = 0; n < N; ++n) {
        const T* row = dy + (n * C + c) * pixels;
        int64_t i = 0;
        for (; i + 16 <= pixels; i += 16)
          for (int l = 0; l < 16; ++l) lanes[l] += row[i + l];
        for (; i < pixels; ++i) lanes[i % 16] += row[i];
      }
      T total = 0;
      for (T v : lanes) total += v;
      db[c] = total;
    }
  });
}

template <typename T>
void add_channel_bias(int64_t N, int64_t C, int64_t pixels, const T* bias, T* y) {
  parallel_for(0, N * C, grain_for(pixels), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T b = bias[r % C];
      T* row = y + r * pixels;
      for (int64_t i = 0; i < pixels; ++i) row[i] += b;
    }
  });
}

template <typename T>
void unfold_images(const ConvGeometry& g, const T* x, T* col) {
  const int64_t CRS = g.C * g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W, ld = PQ + kSlack;
  const Padded pd(g);
  parallel_for(0, g.N, grain_for(CRS * PQ), [&](int64_t n0, int64_t n1) {
    auto xp = scratch<T>(static_cast<size_t>(g.C * pd.plane() + kSlack));
    // im2col's vector runs may write up to kSlack past a row: rows ld apart, copied out.
    auto buf = scratch<T>(static_cast<size_t>(CRS * ld + kSlack));
    for (int64_t n = n0; n < n1; ++n) {
      pad_planes(g, pd, g.C, x + n * g.C * HW, xp.get());
      im2col(g, pd, xp.get(), 0, PQ, buf.get(), ld);
      for (int64_t row = 0; row < CRS; ++row)
        std::copy(buf.get() + row * ld, buf.get() + row * ld + PQ, col + (n * CRS + row) * PQ);
    }
  });
}

template <typename T>
void fold_images(const ConvGeometry& g, const T* col, T* x) {
  const int64_t CRS = g.C * g.R * g.S, PQ = g.P * g.Q, HW = g.H * g.W;
  const Padded pd(g);
  parallel_for(0, g.N, grain_for(CRS * PQ), [&](int64_t n0, int64_t n1) {
    auto xp = scratch<T>(static_cast<size_t>(g.C * pd.plane()));
    for (int64_t n = n0; n < n1; ++n) {
      std::fill(xp.get(), xp.get() + g.C * pd.plane(), T(0));
      col2im_add(g, pd, col + n * CRS * PQ, PQ, 0, PQ, xp.get());
      crop_planes(g, pd, g.C, xp.get(), x + n * g.C * HW);
    }
  });
}

#define KILN_CONV_INSTANTIATE(T)                                                           \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*);  \
  template void conv2d_backward_input<T>(const ConvGeometry&, const T*, const T*, T*);     \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);    \
  template void channel_sum<T>(int64_t, int64_t, int64_t, const T*, T*);                   \
  template void add_channel_bias<T>(int64_t, int64_t, int64_t, const T*, T*);          \
  template void unfold_images<T>(const ConvGeometry&, const T*, T*);                       \
  template void fold_images<T>(const ConvGeometry&, const T*, T*);
KILN_CONV_INSTANTIATE(float)
KILN_CONV_INSTANTIATE(double)
#undef KILN_CONV_INSTANTIATE

}  // namespace kiln::cpu
