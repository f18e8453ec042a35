#include "cpu/conv_s2d.h"

#include <algorithm>

#include "common/parallel.h"
#include "cpu/gemm_tile.h"
#include "cpu/winograd.h"

namespace kiln::cpu {

namespace {

// The 3x3 stride-1 convolution over the space-to-depth input.
ConvGeometry s2d_geometry(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.C = 4 * g.C;
  t.H = g.H / 2;
  t.W = g.W / 2;
  t.R = t.S = 3;
  t.stride_h = t.stride_w = 1;
  t.pad_h = t.pad_w = 1;
  return t;
}

// The original tap (r or s) of phase a at 3x3 tap r', or -1 where none lands.
int64_t tap_of(int64_t r3, int64_t a) {
  const int64_t r = 2 * r3 + a - 1;
  return r >= 0 && r < 4 ? r : -1;
}

// x' from x (to_s2d) or, the adjoint, x from x' (from_s2d): one image plane pair
// per (n, c), rows of W/2 pixels per phase.
template <bool ToS2d>
void move_phases(const ConvGeometry& g, const float* src, float* dst) {
  const int64_t Hh = g.H / 2, Wh = g.W / 2;
  parallel_for(0, g.N * g.C, std::max<int64_t>(1, 16384 / (g.H * g.W)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {  // p = n * C + c
      const float* in = src + p * g.H * g.W;
      float* out = dst + p * g.H * g.W;  // x' planes 4c .. 4c+3 sit where x's plane c does
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < 2; ++b) {
          const int64_t phase = (2 * a + b) * Hh * Wh;
          for (int64_t i = 0; i < Hh; ++i)
            for (int64_t j = 0; j < Wh; ++j) {
              const int64_t full = (2 * i + a) * g.W + 2 * j + b, half = phase + i * Wh + j;
              if constexpr (ToS2d)
                out[half] = in[full];
              else
                out[full] = in[half];
            }
        }
    }
  });
}

// w' (K, 4C, 3, 3) from w (K, C, 4, 4), zeros where no tap lands.
Scratch<float> expand_weight(const ConvGeometry& g, const float* w) {
  auto wx = scratch<float>(static_cast<size_t>(g.K * 4 * g.C * 9));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < 2; ++b)
          for (int64_t r3 = 0; r3 < 3; ++r3)
            for (int64_t s3 = 0; s3 < 3; ++s3) {
              const int64_t r = tap_of(r3, a), s = tap_of(s3, b);
              if (r < 0 || s < 0) continue;
              wx[((k * 4 * g.C + 4 * c + 2 * a + b) * 3 + r3) * 3 + s3] =
                  w[((k * g.C + c) * 4 + r) * 4 + s];
            }
  return wx;
}

}  // namespace

bool space_to_depth_pays(const ConvGeometry& g) {
  if (!(g.R == 4 && g.S == 4 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 1 &&
        g.pad_w == 1 && g.dil_h == 1 && g.dil_w == 1 && g.groups == 1 && g.H % 2 == 0 &&
        g.W % 2 == 0 && g.P == g.H / 2 && g.Q == g.W / 2))
    return false;
#if KILN_FLOAT_VEC
  return winograd_pays(s2d_geometry(g));
#else
  return false;
#endif
}

void conv2d_forward_s2d(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                        float* y) {
  auto xs = scratch<float>(static_cast<size_t>(g.N * g.C * g.H * g.W));
  move_phases<true>(g, x, xs.get());
  const auto wx = expand_weight(g, w);
  conv2d_forward<float>(s2d_geometry(g), xs.get(), wx.get(), bias, y);
}

void conv2d_backward_input_s2d(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  auto dxs = scratch<float>(static_cast<size_t>(g.N * g.C * g.H * g.W));
  const auto wx = expand_weight(g, w);
  conv2d_backward_input<float>(s2d_geometry(g), dy, wx.get(), dxs.get());
  move_phases<false>(g, dxs.get(), dx);
}

void conv2d_backward_weight_s2d(const ConvGeometry& g, const float* dy, const float* x,
                                float* dw) {
  auto xs = scratch<float>(static_cast<size_t>(g.N * g.C * g.H * g.W));
  move_phases<true>(g, x, xs.get());
  auto dwx = scratch<float>(static_cast<size_t>(g.K * 4 * g.C * 9));
  conv2d_backward_weight<float>(s2d_geometry(g), dy, xs.get(), dwx.get());
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t r = 0; r < 4; ++r)
        for (int64_t s = 0; s < 4; ++s) {
          // the (r', a) whose tap is r: a = (r + 1) % 2, r' = (r + 1) / 2
          const int64_t a = (r + 1) % 2, b = (s + 1) % 2, r3 = (r + 1) / 2, s3 = (s + 1) / 2;
          dw[((k * g.C + c) * 4 + r) * 4 + s] =
              dwx[((k * 4 * g.C + 4 * c + 2 * a + b) * 3 + r3) * 3 + s3];
        }
}

}  // namespace kiln::cpu
