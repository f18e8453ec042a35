#include "cpu/winograd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "cpu/gemm_tile.h"
#include "cpu/simd.h"
#include "cpu/transpose.h"

namespace kiln::cpu {

namespace {
std::atomic<bool> g_winograd_allowed{true};
}  // namespace

void set_winograd_allowed(bool allowed) { g_winograd_allowed.store(allowed); }
bool winograd_allowed() { return g_winograd_allowed.load(); }

#if KILN_FLOAT_VEC

namespace {

using simd::kLanes;
using simd::Vec;

constexpr int64_t kOut = 4;     // output tile side (m)
constexpr int64_t kIn = 6;      // input tile side (m + r - 1)
constexpr int64_t kPoints = 36;  // kIn * kIn products per tile
// L2 bytes a block's V and M may take together: with its row buffers and a 16-channel
// layer's U, within the 1 MiB L2 of a Zen 4 core (768 KiB measured 8-25% slower).
constexpr int64_t kBlockBytes = int64_t(384) << 10;
// The most memory V and M may take: the whole batch's to run as one block (else
// blocks, even when the weights outweigh the pixels), one tile row's to take this
// path at all.
constexpr int64_t kWholeBytes = int64_t(64) << 20;
// Tiles a block takes at least, so that each weight matrix streamed past it is reused.
constexpr int64_t kMinTiles = 48;
// Partial weight-gradient sums (parallel_reduce's chunks): at least, at most.
constexpr int64_t kMinParts = 4;
constexpr int64_t kMaxParts = 16;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// u = G g for one line g of a filter (3 vectors of output channels).
inline void weight_line(const Vec g[3], Vec u[6]) {
  const Vec quarter = simd::broadcast(1.0f / 4), sixth = simd::broadcast(1.0f / 6),
            neg_sixth = simd::broadcast(-1.0f / 6), twelfth = simd::broadcast(1.0f / 12),
            twenty_fourth = simd::broadcast(1.0f / 24);
  const Vec outer = simd::add(g[0], g[2]);
  const Vec mid = simd::fmadd(g[0], twenty_fourth, simd::mul(g[2], sixth));
  u[0] = simd::mul(g[0], quarter);
  u[1] = simd::mul(simd::add(outer, g[1]), neg_sixth);
  u[2] = simd::mul(simd::sub(outer, g[1]), neg_sixth);
  u[3] = simd::fmadd(g[1], twelfth, mid);
  u[4] = simd::fnmadd(g[1], twelfth, mid);
  u[5] = g[2];
}

// U[xi, c, k] (rows of Kp) = (G w[k, c] G^T)[xi], whole vectors of output channels at
// a time from the weight transposed to (c, r, s) rows of Kp; channels beyond K stay zero.
void transform_weights(const ConvGeometry& g, const float* w, int64_t Kp, float* U) {
  const int64_t C = g.C;
  auto wt = scratch<float>(static_cast<size_t>(C * 9 * Kp));
  transpose(w, C * 9, g.K, C * 9, wt.get(), Kp);
  parallel_for(0, C, std::max<int64_t>(1, 4096 / Kp), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t k = 0; k < Kp; k += kLanes) {
        const float* f = wt.get() + c * 9 * Kp + k;
        Vec cols[3][kIn];  // G down each column s of the filter
        for (int s = 0; s < 3; ++s) {
          const Vec line[3] = {simd::load(f + s * Kp), simd::load(f + (3 + s) * Kp),
                               simd::load(f + (6 + s) * Kp)};
          weight_line(line, cols[s]);
        }
        for (int i = 0; i < kIn; ++i) {  // then G along each row i
          const Vec line[3] = {cols[0][i], cols[1][i], cols[2][i]};
          Vec u[kIn];
          weight_line(line, u);
          for (int j = 0; j < kIn; ++j) simd::store(U + ((i * kIn + j) * C + c) * Kp + k, u[j]);
        }
      }
  });
}

// v = B^T d for 6 vectors (one line of an input tile, a vector of channels each).
inline void input_line(const Vec d[6], Vec v[6]) {
  const Vec four = simd::broadcast(4.0f), five = simd::broadcast(5.0f),
            two = simd::broadcast(2.0f);
  const Vec t0 = simd::fnmadd(four, d[2], d[4]);  // d4 - 4 d2
  const Vec t1 = simd::fnmadd(four, d[1], d[3]);  // d3 - 4 d1
  const Vec t2 = simd::sub(d[4], d[2]);
  const Vec t3 = simd::sub(d[3], d[1]);
  v[0] = simd::fmadd(four, d[0], simd::fnmadd(five, d[2], d[4]));
  v[1] = simd::add(t0, t1);
  v[2] = simd::sub(t0, t1);
  v[3] = simd::fmadd(two, t3, t2);
  v[4] = simd::fnmadd(two, t3, t2);
  v[5] = simd::fmadd(four, d[1], simd::fnmadd(five, d[3], d[5]));
}

// y = A^T m for 6 vectors (one line of a product tile, a vector of output channels each).
inline void output_line(const Vec m[6], Vec y[4]) {
  const Vec two = simd::broadcast(2.0f), four = simd::broadcast(4.0f),
            eight = simd::broadcast(8.0f);
  const Vec a0 = simd::add(m[1], m[2]), a1 = simd::sub(m[1], m[2]);
  const Vec a2 = simd::add(m[3], m[4]), a3 = simd::sub(m[3], m[4]);
  y[0] = simd::add(simd::add(m[0], a0), a2);
  y[1] = simd::fmadd(two, a3, a1);
  y[2] = simd::fmadd(four, a2, a0);
  y[3] = simd::add(simd::fmadd(eight, a3, a1), m[5]);
}

// v = A e for 4 vectors (one line of an output-gradient tile): A = (A^T)^T above.
inline void grad_line(const Vec e[4], Vec v[6]) {
  const Vec two = simd::broadcast(2.0f), four = simd::broadcast(4.0f);
  const Vec p = simd::add(e[0], e[2]), q = simd::add(e[1], e[3]);
  const Vec r = simd::fmadd(four, e[2], e[0]);               // e0 + 4 e2
  const Vec t = simd::mul(two, simd::fmadd(four, e[3], e[1]));  // 2 e1 + 8 e3
  v[0] = e[0];
  v[1] = simd::add(p, q);
  v[2] = simd::sub(p, q);
  v[3] = simd::add(r, t);
  v[4] = simd::sub(r, t);
  v[5] = e[3];
}

// g = G^T s for one line s of 6 point sums (the adjoint of weight_line).
inline void weight_grad_line(const Vec s[6], Vec g[3]) {
  const Vec quarter = simd::broadcast(1.0f / 4), sixth = simd::broadcast(1.0f / 6),
            twelfth = simd::broadcast(1.0f / 12), twenty_fourth = simd::broadcast(1.0f / 24);
  const Vec a = simd::add(s[1], s[2]), b = simd::add(s[3], s[4]);
  g[0] = simd::fnmadd(a, sixth, simd::fmadd(b, twenty_fourth, simd::mul(s[0], quarter)));
  g[1] = simd::fmadd(simd::sub(s[2], s[1]), sixth, simd::mul(simd::sub(s[3], s[4]), twelfth));
  g[2] = simd::fmadd(simd::sub(b, a), sixth, s[5]);
}

// How the batch's tiles are taken. Tile rows are numbered image after image; a
// block is `rows` consecutive ones (whole tile rows, so an output pixel belongs to
// one block), at least kMinTiles tiles, else as many as keep its V and M within
// kBlockBytes. Each block streams all 36 C x K weight matrices past its tiles; when
// that costs more memory traffic than writing and reading V and M of the whole
// batch (large weights, few pixels: late layers), and those fit in kWholeBytes, the
// batch is one block instead, its 36 products spread over the threads (`whole`).
struct Plan {
  int64_t TH, TW;  // tile rows and columns per image
  int64_t Cp, Kp;  // channels rounded up to whole vectors
  int64_t Wi, Wo;  // channels-last row widths (pixels): input 4 TW + 2, output 4 TW
  int64_t total_rows;
  int64_t rows;    // tile rows per block
  int64_t blocks;
  int64_t tiles;   // tiles per block (at most)
  bool whole;

  explicit Plan(const ConvGeometry& g)
      : TH((g.P + kOut - 1) / kOut),
        TW((g.Q + kOut - 1) / kOut),
        Cp(round_up(g.C, kLanes)),
        Kp(round_up(g.K, kLanes)),
        Wi(kOut * TW + 2),
        Wo(kOut * TW),
        total_rows(TH * g.N) {
    const int64_t fit = kBlockBytes / (kPoints * 4 * (Cp + Kp) * TW);
    rows = std::min(std::max(fit, (kMinTiles + TW - 1) / TW), total_rows);
    blocks = (total_rows + rows - 1) / rows;
    const int64_t whole_bytes = kPoints * 4 * total_rows * TW * (Cp + Kp);
    whole = blocks * g.C * Kp > 2 * total_rows * TW * (Cp + Kp) && whole_bytes <= kWholeBytes;
    if (whole) {
      rows = total_rows;
      blocks = 1;
    }
    tiles = rows * TW;
  }
};

// Channels-last rows of one image part (at most one block's tile rows, at most one
// image): the input rows it reads and the output (or output-gradient) rows.
struct RowBuffers {
  Scratch<float> xs, ys;
  explicit RowBuffers(const Plan& pl)
      : xs(scratch<float>(static_cast<size_t>(
            (kOut * std::min(pl.rows, pl.TH) + 2) * pl.Wi * pl.Cp))),
        ys(scratch<float>(static_cast<size_t>(kOut * std::min(pl.rows, pl.TH) * pl.Wo * pl.Kp))) {}
};

// One block's points: V (36 x tiles x Cp; its rows are written before they are read)
// and M (36 x tiles x Kp; zeroed, as the products write only K of each row's Kp).
struct Points {
  Scratch<float> V, M;
  std::vector<int64_t> offsets;  // tile i's row of V: i * Cp
  explicit Points(const Plan& pl)
      : V(scratch_unfilled<float>(static_cast<size_t>(kPoints * pl.tiles * pl.Cp))),
        M(scratch<float>(static_cast<size_t>(kPoints * pl.tiles * pl.Kp))),
        offsets(static_cast<size_t>(pl.tiles)) {
    for (int64_t i = 0; i < pl.tiles; ++i) offsets[i] = i * pl.Cp;
  }
};

// dst[r, j, c] = src[c, row0 + r, col0 + j] for r < rows, j < cols, c < C (C planes
// of H x W; zero outside them): rows of NCHW moved channels-last, Cp channels a
// pixel. Channels C..Cp are never written, so a buffer zeroed once keeps them zero.
void to_channels_last(const float* src, int64_t C, int64_t H, int64_t W, int64_t row0,
                      int64_t col0, int64_t rows, int64_t cols, int64_t Cp, float* dst) {
  const int64_t lo = std::clamp<int64_t>(-col0, 0, cols), hi = std::clamp<int64_t>(W - col0, lo, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = row0 + r;
    float* row = dst + r * cols * Cp;
    if (i < 0 || i >= H || hi == lo) {
      std::memset(row, 0, sizeof(float) * cols * Cp);
      continue;
    }
    std::memset(row, 0, sizeof(float) * lo * Cp);
    std::memset(row + hi * Cp, 0, sizeof(float) * (cols - hi) * Cp);
    transpose(src + i * W + col0 + lo, H * W, C, hi - lo, row + lo * Cp, Cp);
  }
}

// Input rows 4 r0 - pad_h .. 4 r1 + 1 - pad_h of image xn into xs (Wi pixels a row).
void gather_input(const ConvGeometry& g, const Plan& pl, const float* xn, int64_t r0, int64_t r1,
                  float* xs) {
  to_channels_last(xn, g.C, g.H, g.W, kOut * r0 - g.pad_h, -g.pad_w, kOut * (r1 - r0) + 2, pl.Wi,
                   pl.Cp, xs);
}

// V[xi, i, :] for the tiles of tile rows r0..r1 of one image, i from `first`.
void transform_input(const Plan& pl, const float* xs, int64_t r0, int64_t r1, int64_t first,
                     float* V) {
  const int64_t pixel = pl.Cp, line = pl.Wi * pl.Cp;
  for (int64_t th = r0; th < r1; ++th)
    for (int64_t tw = 0; tw < pl.TW; ++tw) {
      const float* d0 = xs + kOut * (th - r0) * line + kOut * tw * pixel;
      const int64_t i = first + (th - r0) * pl.TW + tw;
      for (int64_t c = 0; c < pl.Cp; c += kLanes) {
        Vec cols[kIn][kIn];  // cols[v] = B^T down column v of the tile
        for (int v = 0; v < kIn; ++v) {
          Vec d[kIn];
          for (int u = 0; u < kIn; ++u) d[u] = simd::load(d0 + u * line + v * pixel + c);
          input_line(d, cols[v]);
        }
        for (int nu = 0; nu < kIn; ++nu) {  // then B along each row nu
          const Vec d[kIn] = {cols[0][nu], cols[1][nu], cols[2][nu],
                              cols[3][nu], cols[4][nu], cols[5][nu]};
          Vec v[kIn];
          input_line(d, v);
          for (int mu = 0; mu < kIn; ++mu)
            simd::store(V + ((nu * kIn + mu) * pl.tiles + i) * pl.Cp + c, v[mu]);
        }
      }
    }
}

// ys (channels-last output rows) = A^T M A + bias for the tiles of tile rows
// r0..r1 of one image, whose M rows start at `first`.
// Returns whether every value written is finite.
bool transform_output(const Plan& pl, const float* M, const float* bias_p, int64_t r0,
                      int64_t r1, int64_t first, float* ys) {
  Vec poison = simd::zero();  // stays 0 unless a value is Inf or NaN (then v * 0 is NaN)
  const int64_t pixel = pl.Kp, line = pl.Wo * pl.Kp;
  for (int64_t th = r0; th < r1; ++th)
    for (int64_t tw = 0; tw < pl.TW; ++tw) {
      const int64_t i = first + (th - r0) * pl.TW + tw;
      float* y0 = ys + kOut * (th - r0) * line + kOut * tw * pixel;
      for (int64_t k = 0; k < pl.Kp; k += kLanes) {
        const Vec b = simd::load(bias_p + k);
        Vec cols[kIn][kOut];  // cols[mu] = A^T down column mu
        for (int mu = 0; mu < kIn; ++mu) {
          Vec m[kIn];
          for (int nu = 0; nu < kIn; ++nu)
            m[nu] = simd::load(M + ((nu * kIn + mu) * pl.tiles + i) * pl.Kp + k);
          output_line(m, cols[mu]);
        }
        for (int r = 0; r < kOut; ++r) {  // then A along each output row r
          const Vec m[kIn] = {cols[0][r], cols[1][r], cols[2][r],
                              cols[3][r], cols[4][r], cols[5][r]};
          Vec out[kOut];
          output_line(m, out);
          for (int s = 0; s < kOut; ++s) {
            const Vec v = simd::add(out[s], b);
            poison = simd::fmadd(v, simd::zero(), poison);
            simd::store(y0 + r * line + s * pixel + k, v);
          }
        }
      }
    }
  return simd::sum_lanes(poison) == 0.0f;
}

// y rows 4 r0 .. min(4 r1, P) of image yn (K planes of P x Q) from ys.
void scatter_rows(const ConvGeometry& g, const Plan& pl, const float* ys, int64_t r0, int64_t r1,
                  float* yn) {
  const int64_t p0 = kOut * r0, p1 = std::min(kOut * r1, g.P), PQ = g.P * g.Q;
  if (pl.Wo == g.Q) {  // the rows are contiguous on both sides: one transpose
    transpose(ys, pl.Kp, (p1 - p0) * g.Q, g.K, yn + p0 * g.Q, PQ);
    return;
  }
  for (int64_t p = p0; p < p1; ++p)
    transpose(ys + (p - p0) * pl.Wo * pl.Kp, pl.Kp, g.Q, g.K, yn + p * g.Q, PQ);
}

// dY^ = A dY A^T for the tiles of tile rows r0..r1 of one image, from dys (its
// output-gradient rows channels-last, zero beyond P x Q), into Yh from row `first`.
void transform_output_grad(const Plan& pl, const float* dys, int64_t r0, int64_t r1,
                           int64_t first, float* Yh) {
  const int64_t pixel = pl.Kp, line = pl.Wo * pl.Kp;
  for (int64_t th = r0; th < r1; ++th)
    for (int64_t tw = 0; tw < pl.TW; ++tw) {
      const int64_t i = first + (th - r0) * pl.TW + tw;
      const float* e0 = dys + kOut * (th - r0) * line + kOut * tw * pixel;
      for (int64_t k = 0; k < pl.Kp; k += kLanes) {
        Vec cols[kOut][kIn];  // cols[s] = A down column s of the gradient tile
        for (int s = 0; s < kOut; ++s) {
          Vec e[kOut];
          for (int r = 0; r < kOut; ++r) e[r] = simd::load(e0 + r * line + s * pixel + k);
          grad_line(e, cols[s]);
        }
        for (int nu = 0; nu < kIn; ++nu) {  // then A along each row nu
          const Vec e[kOut] = {cols[0][nu], cols[1][nu], cols[2][nu], cols[3][nu]};
          Vec v[kIn];
          grad_line(e, v);
          for (int mu = 0; mu < kIn; ++mu)
            simd::store(Yh + ((nu * kIn + mu) * pl.tiles + i) * pl.Kp + k, v[mu]);
        }
      }
    }
}

// dw[k, c] = G^T S[:, c, k] G (S: 36 points of C rows of Kp), whole vectors of
// output channels at a time into (c, r, s) rows of Kp, then transposed into dw.
void weights_from_points(const ConvGeometry& g, const float* S, int64_t Kp, float* dw) {
  const int64_t C = g.C;
  auto dwt = scratch<float>(static_cast<size_t>(C * 9 * Kp));
  parallel_for(0, C, std::max<int64_t>(1, 4096 / Kp), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t k = 0; k < Kp; k += kLanes) {
        Vec rows[kIn][3];  // G^T along each row i of the 6x6 point sums
        for (int i = 0; i < kIn; ++i) {
          Vec line[kIn];
          for (int j = 0; j < kIn; ++j) line[j] = simd::load(S + ((i * kIn + j) * C + c) * Kp + k);
          weight_grad_line(line, rows[i]);
        }
        for (int s = 0; s < 3; ++s) {  // then G^T down each column s
          const Vec line[kIn] = {rows[0][s], rows[1][s], rows[2][s],
                                 rows[3][s], rows[4][s], rows[5][s]};
          Vec col[3];
          weight_grad_line(line, col);
          for (int r = 0; r < 3; ++r) simd::store(dwt.get() + (c * 9 + r * 3 + s) * Kp + k, col[r]);
        }
      }
  });
  transpose(dwt.get(), Kp, C * 9, g.K, dw, C * 9);
}

// fn(n, r0, r1, first) for each image n whose tile rows r0..r1 lie in tile rows
// [row0, row1); first = the point row of tile (r0, 0) in a block that starts at
// tile row `base`.
template <typename F>
void for_each_image_part(const Plan& pl, int64_t base, int64_t row0, int64_t row1, F&& fn) {
  for (int64_t gr = row0; gr < row1;) {
    const int64_t n = gr / pl.TH, r0 = gr % pl.TH, r1 = std::min(pl.TH, r0 + row1 - gr);
    fn(n, r0, r1, (gr - base) * pl.TW);
    gr += r1 - r0;
  }
}

// fn(rows, row0, row1) over the batch's tile rows: in block mode one block at a
// time on each thread (row buffers per thread), in whole mode image by image.
template <typename F>
void for_each_part(const Plan& pl, int64_t N, F&& fn) {
  const int64_t step = pl.whole ? pl.TH : pl.rows;
  const int64_t parts = pl.whole ? N : pl.blocks;
  parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    RowBuffers rb(pl);
    for (int64_t p = p0; p < p1; ++p) fn(rb, p * step, std::min(pl.total_rows, (p + 1) * step));
  });
}

}  // namespace

bool winograd_pays(const ConvGeometry& g) {
  if (!winograd_allowed()) return false;
  if (!(g.R == 3 && g.S == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
        g.dil_w == 1 && g.groups == 1 && g.C >= 16 && g.K >= 16 && g.P >= kOut &&
        g.Q >= kOut && g.N > 0))
    return false;
  // A block holds at least one tile row: very wide images with many channels would
  // need more scratch per thread than the direct method's.
  const int64_t row_bytes = kPoints * 4 * ((g.Q + kOut - 1) / kOut) *
                            (round_up(g.C, kLanes) + round_up(g.K, kLanes));
  return row_bytes <= kWholeBytes;
}

bool conv2d_forward_winograd(const ConvGeometry& g, const float* x, const float* w,
                             const float* bias, float* y) {
  const Plan pl(g);
  auto U = scratch_unfilled<float>(static_cast<size_t>(kPoints * g.C * pl.Kp));
  transform_weights(g, w, pl.Kp, U.get());
  auto bias_p = scratch<float>(static_cast<size_t>(pl.Kp));
  if (bias != nullptr) std::copy_n(bias, g.K, bias_p.get());
  const int64_t CHW = g.C * g.H * g.W, KPQ = g.K * g.P * g.Q, zero = 0;
  std::atomic<bool> finite{true};

  auto inputs = [&](RowBuffers& rb, Points& pts, int64_t base, int64_t row0, int64_t row1) {
    for_each_image_part(pl, base, row0, row1, [&](int64_t n, int64_t r0, int64_t r1, int64_t first) {
      gather_input(g, pl, x + n * CHW, r0, r1, rb.xs.get());
      transform_input(pl, rb.xs.get(), r0, r1, first, pts.V.get());
    });
  };
  // M_xi[t, k] = sum_c V_xi[t, c] U_xi[c, k] for the block's first `tiles` tiles
  auto product = [&](Points& pts, int64_t tiles, int64_t xi) {
    tap_gemm<float>(tiles, g.K, g.C, 1, pts.V.get() + xi * pl.tiles * pl.Cp, pts.offsets.data(),
                    &zero, 1, U.get() + xi * g.C * pl.Kp, 0, pl.Kp,
                    pts.M.get() + xi * pl.tiles * pl.Kp, pl.Kp, false);
  };
  auto outputs = [&](RowBuffers& rb, Points& pts, int64_t base, int64_t row0, int64_t row1) {
    for_each_image_part(pl, base, row0, row1, [&](int64_t n, int64_t r0, int64_t r1, int64_t first) {
      if (!transform_output(pl, pts.M.get(), bias_p.get(), r0, r1, first, rb.ys.get()))
        finite.store(false, std::memory_order_relaxed);
      scatter_rows(g, pl, rb.ys.get(), r0, r1, y + n * KPQ);
    });
  };
  if (pl.whole) {
    Points pts(pl);
    for_each_part(pl, g.N, [&](RowBuffers& rb, int64_t r0, int64_t r1) { inputs(rb, pts, 0, r0, r1); });
    parallel_for(0, kPoints, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi) product(pts, pl.tiles, xi);
    });
    for_each_part(pl, g.N, [&](RowBuffers& rb, int64_t r0, int64_t r1) { outputs(rb, pts, 0, r0, r1); });
    return finite.load();
  }
  parallel_for(0, pl.blocks, 1, [&](int64_t b0, int64_t b1) {
    RowBuffers rb(pl);
    Points pts(pl);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t row0 = blk * pl.rows, row1 = std::min(pl.total_rows, row0 + pl.rows);
      inputs(rb, pts, row0, row0, row1);
      for (int64_t xi = 0; xi < kPoints; ++xi) product(pts, (row1 - row0) * pl.TW, xi);
      outputs(rb, pts, row0, row0, row1);
    }
  });
  return finite.load();
}

bool conv2d_backward_weight_winograd(const ConvGeometry& g, const float* dy, const float* x,
                                     float* dw) {
  const Plan pl(g);
  const int64_t CHW = g.C * g.H * g.W, KPQ = g.K * g.P * g.Q, zero = 0;
  const int64_t size = kPoints * g.C * pl.Kp;
  std::vector<int64_t> channel_rows(static_cast<size_t>(g.C));
  for (int64_t c = 0; c < g.C; ++c) channel_rows[c] = c;

  // V (from x) and dY^ (from dy, into M) of tile rows [row0, row1).
  auto transforms = [&](RowBuffers& rb, Points& pts, int64_t base, int64_t row0, int64_t row1) {
    for_each_image_part(pl, base, row0, row1, [&](int64_t n, int64_t r0, int64_t r1, int64_t first) {
      gather_input(g, pl, x + n * CHW, r0, r1, rb.xs.get());
      transform_input(pl, rb.xs.get(), r0, r1, first, pts.V.get());
      to_channels_last(dy + n * KPQ, g.K, g.P, g.Q, kOut * r0, 0, kOut * (r1 - r0), pl.Wo, pl.Kp,
                       rb.ys.get());
      transform_output_grad(pl, rb.ys.get(), r0, r1, first, pts.M.get());
    });
  };
  // S_xi[c, k] (+)= sum over the block's first `tiles` tiles t of V_xi[t, c] dY^_xi[t, k]
  auto product = [&](Points& pts, int64_t tiles, int64_t xi, float* S, bool accumulate) {
    tap_gemm<float>(g.C, g.K, tiles, 1, pts.V.get() + xi * pl.tiles * pl.Cp, channel_rows.data(),
                    &zero, pl.Cp, pts.M.get() + xi * pl.tiles * pl.Kp, 0, pl.Kp,
                    S + xi * g.C * pl.Kp, pl.Kp, accumulate);
  };
  // Unfilled: the whole batch's products write the K columns of every row that dw
  // takes; with blocks, parallel_reduce zeroes it as its first part.
  auto S = scratch_unfilled<float>(static_cast<size_t>(size));
  if (pl.whole) {  // one product per point over every tile: a fixed order
    Points pts(pl);
    for_each_part(pl, g.N, [&](RowBuffers& rb, int64_t r0, int64_t r1) { transforms(rb, pts, 0, r0, r1); });
    parallel_for(0, kPoints, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi) product(pts, pl.tiles, xi, S.get(), false);
    });
  } else {
    // Partial sums over fixed chunks of blocks: few enough that adding them costs
    // less than reading x and dy, but at least kMinParts (when there are that many
    // blocks), so that the threads share the work even when the weights are large.
    const int64_t parts =
        std::clamp<int64_t>(g.N * (CHW + KPQ) / size, std::min(pl.blocks, kMinParts), kMaxParts);
    parallel_reduce<float>(pl.blocks, 1, parts, size, S.get(), [&](int64_t b0, int64_t b1, float* part) {
      RowBuffers rb(pl);
      Points pts(pl);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t row0 = blk * pl.rows, row1 = std::min(pl.total_rows, row0 + pl.rows);
        transforms(rb, pts, row0, row0, row1);
        for (int64_t xi = 0; xi < kPoints; ++xi)
          product(pts, (row1 - row0) * pl.TW, xi, part, true);
      }
    });
  }
  weights_from_points(g, S.get(), pl.Kp, dw);
  return std::all_of(dw, dw + g.K * g.C * 9, [](float v) { return std::isfinite(v); });
}

#endif

}  // namespace kiln::cpu
