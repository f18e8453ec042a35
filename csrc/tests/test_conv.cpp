// Convolution kernels against a direct loop over the definition in conv.h, and
// the tile GEMM against a naive product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "cpu/conv.h"
#include "cpu/gemm_tile.h"

namespace kiln::cpu {
namespace {

template <typename T>
std::vector<T> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Calls fn(n, k, c, p, q, r, s, ih, iw) for every in-range term of the sum
// y[n,k,p,q] += w[k,c,r,s] * x[n, g*C/G + c, ih, iw].
template <typename F>
void for_each_term(const ConvGeometry& g, F&& fn) {
  const int64_t Cg = g.C / g.groups, Kg = g.K / g.groups;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t p = 0; p < g.P; ++p)
          for (int64_t q = 0; q < g.Q; ++q)
            for (int64_t r = 0; r < g.R; ++r)
              for (int64_t s = 0; s < g.S; ++s) {
                const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
                const int64_t iw = q * g.stride_w - g.pad_w + s * g.dil_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                fn(((n * g.K + k) * g.P + p) * g.Q + q, ((k * Cg + c) * g.R + r) * g.S + s,
                   ((n * g.C + (k / Kg) * Cg + c) * g.H + ih) * g.W + iw);
              }
}

struct Case {
  Shape input, weight;
  Pair stride, padding, dilation;
  int64_t groups;
};

const Case kCases[] = {
    {{2, 3, 9, 11}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {{1, 4, 13, 7}, {6, 2, 3, 5}, {2, 3}, {1, 2}, {2, 1}, 2},
    {{3, 6, 10, 10}, {6, 1, 3, 3}, {2, 2}, {0, 0}, {1, 1}, 6},
    {{2, 5, 12, 12}, {70, 5, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},  // several row tiles
    {{1, 8, 20, 21}, {16, 8, 3, 3}, {1, 1}, {2, 2}, {2, 2}, 1},  // several pixel blocks
    {{2, 4, 9, 9}, {4, 4, 7, 7}, {1, 1}, {3, 3}, {1, 1}, 1},
    {{2, 3, 8, 8}, {5, 3, 1, 1}, {3, 3}, {0, 0}, {1, 1}, 1},
    {{1, 2, 4, 4}, {3, 2, 3, 3}, {1, 1}, {4, 4}, {1, 1}, 1},  // padding beyond the kernel
    {{2, 3, 11, 9}, {6, 1, 3, 2}, {2, 1}, {1, 1}, {1, 2}, 3},  // depthwise, multiplier 2
    {{2, 1, 9, 9}, {5, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},   // one input channel
    {{2, 1, 7, 35}, {4, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, 1},  // rows of 3 lane segments
    {{1, 2, 6, 20}, {4, 1, 3, 3}, {1, 1}, {1, 0}, {2, 1}, 2},  // depthwise, row dilation 2
    // The channels-last scatter input gradient (strides, or few input channels):
    {{2, 6, 14, 14}, {16, 6, 5, 5}, {1, 1}, {0, 0}, {1, 1}, 1},   // LeNet's second layer
    {{2, 3, 16, 17}, {8, 3, 4, 4}, {2, 2}, {1, 1}, {1, 1}, 1},    // DCGAN-style 4x4 stride 2
    {{7, 5, 5, 5}, {12, 5, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},     // images share a block
    {{2, 64, 9, 9}, {20, 64, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},   // one tap per chunk
    {{1, 4, 13, 12}, {6, 2, 3, 3}, {2, 2}, {1, 1}, {1, 2}, 2},    // column dilation: RS taps
    {{1, 3, 30, 30}, {4, 3, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 1},    // several pixel blocks
    // Several small images in one block of the direct forward (the last chunk short):
    {{7, 8, 4, 4}, {70, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {{5, 8, 3, 3}, {12, 4, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 2},
    // Depthwise input gradient as a forward over the spread-out dy:
    {{2, 8, 11, 13}, {8, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 8},
    {{1, 4, 12, 10}, {4, 1, 3, 3}, {2, 3}, {3, 1}, {1, 2}, 4},  // padding beyond dil*(R-1)
    {{2, 5, 9, 40}, {5, 1, 5, 5}, {1, 1}, {0, 2}, {1, 1}, 5},
    // 1x1 at stride 1 without padding: per-image products on NCHW, grouped or not.
    {{2, 8, 4, 8}, {24, 8, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
    {{3, 6, 4, 4}, {9, 2, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 3},
    // Depthwise at stride 2 along rows longer than one 32-element split (both phases):
    {{1, 2, 5, 70}, {2, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 2},
    {{1, 2, 5, 67}, {2, 1, 3, 3}, {2, 2}, {0, 0}, {1, 1}, 2},
    // Pixels along the lanes (stride 1, 4 to 16 output channels): rows that end in a
    // part vector, several tiles, channel blocks of unequal need, groups, dilation:
    {{3, 1, 28, 28}, {6, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, 1},     // LeNet's first layer
    {{2, 6, 13, 17}, {14, 3, 3, 2}, {1, 1}, {1, 0}, {2, 3}, 2},
    {{1, 5, 19, 45}, {13, 5, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    // Depthwise with output rows shorter than 16, channels along the lanes in blocks of
    // 64: a part block, several blocks, stride 2, dilation, padding beyond the kernel,
    // 2x2 planes:
    {{3, 70, 4, 4}, {70, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 70},
    {{2, 130, 7, 6}, {130, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 130},
    {{2, 20, 5, 9}, {20, 1, 3, 2}, {1, 2}, {2, 0}, {2, 1}, 20},
    {{5, 64, 2, 2}, {64, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 64},
    // 1x1 on planes under 16 pixels: one product over the batch (kiln::gemm).
    {{5, 70, 3, 3}, {130, 70, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
    {{3, 33, 2, 2}, {20, 33, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
    // 1x1 read in place by the direct forward: chunks of 8 images, the last short.
    {{9, 20, 4, 5}, {40, 20, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
    // 1x1 on planes of whole vectors and at least kPointwisePixels pixels: pixels
    // along the lanes, straight on NCHW (grouped or not; the input gradient too).
    {{2, 5, 16, 32}, {7, 5, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
    {{2, 6, 32, 32}, {9, 2, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 3},
    // 1x1 at strides above 1: the stride-1 layer on the subsampled input.
    {{2, 6, 9, 8}, {8, 3, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 2},
    {{2, 5, 33, 32}, {7, 5, 1, 1}, {2, 3}, {0, 0}, {1, 1}, 1},
    // The direct weight gradient over several images per call (3x3 output planes:
    // 14 images a call, the last call short):
    {{19, 6, 5, 5}, {20, 6, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},
    // A DCGAN-style 4x4 stride-2 layer onto 4x4 planes: the direct forward takes 8
    // images a chunk (6 rounded up to a power of two), the last chunk short.
    {{11, 24, 8, 8}, {200, 24, 4, 4}, {2, 2}, {1, 1}, {1, 1}, 1},
};

// Winograd F(4x4, 3x3) (winograd.h), float forward and both gradients: output sides
// not multiples of 4, channels not multiples of a vector, padding 0 and 2 (the input
// gradient's padding 2 and 0), blocks of tile rows that span images, one image
// taller than a block, and a layer whose weights outweigh its pixels (one block,
// its 36 products spread over the threads).
const Case kWinogradCases[] = {
    {{3, 16, 13, 11}, {20, 16, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1},
    {{2, 24, 9, 10}, {17, 24, 3, 3}, {1, 1}, {2, 2}, {1, 1}, 1},
    {{5, 16, 4, 6}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {{1, 33, 45, 18}, {48, 33, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {{64, 16, 8, 8}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {{2, 16, 32, 32}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},  // ResNet-20's first stage
    {{4, 96, 5, 5}, {128, 96, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},   // the whole batch one block
};

// Every element within tol * (floor + |want|), floor 1, or with rms_floor the
// reference's root mean square: transforms such as Winograd's round in proportion
// to the scale of the whole sum, not of each output.
template <typename T>
void check_against_naive(const Case& cs, double tol, bool rms_floor = false) {
  const ConvGeometry g = conv2d_geometry("conv2d", cs.input, cs.weight, cs.stride, cs.padding,
                                         cs.dilation, cs.groups);
  const auto x = random_vector<T>(numel(cs.input), 1);
  const auto w = random_vector<T>(numel(cs.weight), 2);
  const auto b = random_vector<T>(static_cast<size_t>(g.K), 3);
  const auto dy = random_vector<T>(numel(g.output_shape()), 4);
  std::vector<double> y_ref(dy.size()), dx_ref(x.size()), dw_ref(w.size());
  for (size_t i = 0; i < y_ref.size(); ++i) y_ref[i] = b[(i / (g.P * g.Q)) % g.K];
  for_each_term(g, [&](int64_t yi, int64_t wi, int64_t xi) {
    y_ref[yi] += double(w[wi]) * x[xi];
    dx_ref[xi] += double(w[wi]) * dy[yi];
    dw_ref[wi] += double(x[xi]) * dy[yi];
  });
  std::vector<T> y(dy.size()), dx(x.size()), dw(w.size());
  conv2d_forward<T>(g, x.data(), w.data(), b.data(), y.data());
  conv2d_backward_input<T>(g, dy.data(), w.data(), dx.data());
  conv2d_backward_weight<T>(g, dy.data(), x.data(), dw.data());
  auto expect_close = [&](const std::vector<T>& got, const std::vector<double>& want,
                          const char* what) {
    double floor = 1;
    if (rms_floor) {
      double squares = 0;
      for (double v : want) squares += v * v;
      floor = std::sqrt(squares / std::max<size_t>(want.size(), 1));
    }
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], tol * (floor + std::abs(want[i])))
          << what << " element " << i << " input " << shape_str(cs.input);
  };
  expect_close(y, y_ref, "forward");
  expect_close(dx, dx_ref, "backward input");
  expect_close(dw, dw_ref, "backward weight");
}

TEST(Conv2d, MatchesNaiveFloat) {
  set_num_threads(2);
  for (const Case& cs : kCases) check_against_naive<float>(cs, 1e-4);
}

// Relative to the scale of the sums (their root mean square), F(4x4, 3x3) in float
// rounds at about 2e-6 on average and up to 4e-5 at worst.
TEST(Conv2d, WinogradMatchesNaiveFloat) {
  set_num_threads(2);
  for (const Case& cs : kWinogradCases) check_against_naive<float>(cs, 1e-4, true);
  for (const Case& cs : kWinogradCases) check_against_naive<double>(cs, 1e-10);
}

TEST(Conv2d, MatchesNaiveDouble) {
  set_num_threads(2);
  for (const Case& cs : kCases) check_against_naive<double>(cs, 1e-10);
}

// The three maps are adjoint: <dy, conv(x)> = <backward_input(dy), x> =
// <backward_weight(dy, x), w>, in float64 to near rounding.
TEST(Conv2d, GradientsAreAdjointsDouble) {
  for (const Case& cs : kCases) {
    const ConvGeometry g = conv2d_geometry("conv2d", cs.input, cs.weight, cs.stride,
                                           cs.padding, cs.dilation, cs.groups);
    const auto x = random_vector<double>(numel(cs.input), 11);
    const auto w = random_vector<double>(numel(cs.weight), 12);
    const auto dy = random_vector<double>(numel(g.output_shape()), 13);
    std::vector<double> y(dy.size()), dx(x.size()), dw(w.size());
    conv2d_forward<double>(g, x.data(), w.data(), nullptr, y.data());
    conv2d_backward_input<double>(g, dy.data(), w.data(), dx.data());
    conv2d_backward_weight<double>(g, dy.data(), x.data(), dw.data());
    auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
      double s = 0;
      for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
      return s;
    };
    const double want = dot(dy, y), scale = 1e-10 * (1 + std::abs(want)) * std::sqrt(y.size());
    EXPECT_NEAR(dot(dx, x), want, scale) << "input " << shape_str(cs.input);
    EXPECT_NEAR(dot(dw, w), want, scale) << "input " << shape_str(cs.input);
  }
}

TEST(Conv2d, OneThreadMatchesNaive) {
  set_num_threads(1);
  check_against_naive<float>(kCases[1], 1e-4);
  set_num_threads(2);
}

// The weight gradient sums over images and pixels: its chunks come from the
// problem, so every thread count gives the same bits (float: the direct path on
// AVX-512 or AVX2, im2col otherwise; double: im2col; and the depthwise path).
// So do the forward and the input gradient, whose paths group images by the shapes.
template <typename T>
void expect_grads_thread_independent(const Shape& x, const Shape& w, int64_t groups,
                                     Pair padding, Pair stride = {1, 1}) {
  const ConvGeometry g = conv2d_geometry("conv2d", x, w, stride, padding, {1, 1}, groups);
  const auto xv = random_vector<T>(numel(x), 3);
  const auto wv = random_vector<T>(numel(w), 5);
  const auto dy = random_vector<T>(g.N * g.K * g.P * g.Q, 4);
  std::vector<std::vector<T>> dws, dxs, ys;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> dw(numel(w)), dx(numel(x)), y(dy.size());
    conv2d_forward(g, xv.data(), wv.data(), static_cast<const T*>(nullptr), y.data());
    ys.push_back(y);
    conv2d_backward_weight(g, dy.data(), xv.data(), dw.data());
    conv2d_backward_input(g, dy.data(), wv.data(), dx.data());
    dws.push_back(dw);
    dxs.push_back(dx);
  }
  set_num_threads(2);
  EXPECT_EQ(dws[0], dws[1]);
  EXPECT_EQ(dws[0], dws[2]);
  EXPECT_EQ(dxs[0], dxs[1]);
  EXPECT_EQ(dxs[0], dxs[2]);
  EXPECT_EQ(ys[0], ys[1]);
  EXPECT_EQ(ys[0], ys[2]);
}

TEST(Conv2d, GradientsSameAtAnyThreadCount) {
  expect_grads_thread_independent<float>({64, 16, 16, 16}, {32, 16, 3, 3}, 1, {1, 1});
  expect_grads_thread_independent<float>({3, 64, 9, 9}, {96, 64, 3, 3}, 1, {1, 1});
  expect_grads_thread_independent<float>({9, 8, 11, 11}, {12, 2, 3, 3}, 4, {0, 1});
  expect_grads_thread_independent<double>({16, 6, 12, 12}, {8, 6, 3, 3}, 1, {1, 1});
  expect_grads_thread_independent<float>({16, 8, 12, 12}, {8, 1, 3, 3}, 8, {1, 1});
  expect_grads_thread_independent<float>({16, 6, 14, 14}, {16, 6, 5, 5}, 1, {0, 0});
  expect_grads_thread_independent<float>({40, 32, 8, 8}, {64, 32, 3, 3}, 1, {1, 1}, {2, 2});
  expect_grads_thread_independent<float>({16, 32, 16, 16}, {32, 1, 3, 3}, 32, {1, 1}, {2, 2});
  // Depthwise weight gradient with taps along registers (rows of 16 or more outputs).
  expect_grads_thread_independent<float>({16, 8, 20, 20}, {8, 1, 3, 3}, 8, {1, 1});
  expect_grads_thread_independent<float>({23, 64, 4, 4}, {256, 64, 3, 3}, 1, {1, 1});
  // Pixels along the lanes: forward, input gradient as a forward, weight gradient.
  expect_grads_thread_independent<float>({12, 1, 20, 20}, {6, 1, 5, 5}, 1, {2, 2});
  expect_grads_thread_independent<float>({10, 16, 16, 16}, {16, 16, 3, 3}, 1, {1, 1});
  expect_grads_thread_independent<float>({16, 32, 8, 8}, {64, 32, 1, 1}, 1, {0, 0});
  // Depthwise with channels along the lanes (blocks of 64 channels).
  expect_grads_thread_independent<float>({9, 200, 4, 4}, {200, 1, 3, 3}, 200, {1, 1});
  expect_grads_thread_independent<double>({9, 130, 8, 8}, {130, 1, 3, 3}, 130, {1, 1}, {2, 2});
  // The direct weight gradient over several images per call, in several image chunks.
  expect_grads_thread_independent<float>({37, 24, 6, 6}, {40, 24, 3, 3}, 1, {1, 1}, {2, 2});
  // 1x1 on 2x2 planes, one product over the batch.
  expect_grads_thread_independent<float>({64, 96, 2, 2}, {160, 96, 1, 1}, 1, {0, 0});
}

TEST(Conv2d, BiasGradientIsChannelSum) {
  const auto dy = random_vector<float>(2 * 3 * 5, 5);
  std::vector<float> db(3);
  channel_sum<float>(2, 3, 5, dy.data(), db.data());
  for (int c = 0; c < 3; ++c) {
    double want = 0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 5; ++i) want += dy[(n * 3 + c) * 5 + i];
    EXPECT_NEAR(db[c], want, 1e-5);
  }
}

// conv_transpose2d with output_padding >= stride (allowed below dilation): its
// output has rows no window of the P-row conv2d reaches.
TEST(ConvTranspose2d, GeometryWithOutputPaddingBeyondStride) {
  const ConvGeometry g = conv_transpose2d_geometry("conv_transpose2d", {2, 4, 6, 5},
                                                   {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 1},
                                                   {2, 2}, 2);
  EXPECT_EQ(g.output_shape(), (Shape{2, 4, 6, 5}));
  EXPECT_EQ(g.input_shape(), (Shape{2, 6, 11, 10}));  // (6-1) + 2*2 + 1 + 1
  const auto x = random_vector<float>(numel(g.output_shape()), 6);
  const auto w = random_vector<float>(numel(g.weight_shape()), 7);
  std::vector<double> ref(numel(g.input_shape()));
  for_each_term(g, [&](int64_t yi, int64_t wi, int64_t xi) { ref[xi] += double(w[wi]) * x[yi]; });
  std::vector<float> y(ref.size());
  conv2d_backward_input<float>(g, x.data(), w.data(), y.data());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-4 * (1 + std::abs(ref[i])));
}

TEST(Conv2d, BadArgumentsThrow) {
  auto geometry = [](Shape x, Shape w, Pair stride, Pair pad, Pair dil, int64_t groups) {
    return conv2d_geometry("conv2d", x, w, stride, pad, dil, groups);
  };
  EXPECT_THROW(geometry({2, 3, 8}, {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 2, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 6, 8, 8}, {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 4), ValueError);
  EXPECT_THROW(geometry({2, 3, 2, 2}, {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 3, 3, 3}, {0, 1}, {0, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 3, 3, 3}, {1, 1}, {-1, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 0}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 3, 0, 3}, {1, 1}, {0, 0}, {1, 1}, 1), ValueError);
  EXPECT_THROW(geometry({2, 3, 8, 8}, {4, 3, 3, 3}, {1, 1}, {int64_t(1) << 40, 0}, {1, 1}, 1),
               ValueError);
  EXPECT_THROW(conv_transpose2d_geometry("conv_transpose2d", {2, 4, 5, 5}, {4, 2, 3, 3},
                                         {2, 2}, {0, 0}, {2, 0}, {1, 1}, 1),
               ValueError);
  EXPECT_THROW(conv_transpose2d_geometry("conv_transpose2d", {2, 4, 1, 1}, {4, 2, 1, 1},
                                         {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1),
               ValueError);
  try {
    geometry({8, 3, 32, 32}, {16, 4, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1);
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_STREQ(e.what(),
                 "conv2d: input (8, 3, 32, 32) has 3 channels but weight (16, 4, 3, 3) "
                 "expects 4 (groups=1)");
  }
}

// gemm_tile with every A layout the convolutions use, edge tiles included.
TEST(GemmTile, MatchesNaive) {
  for (int64_t M : {1, 5, 6, 13, 64, 70})
    for (int64_t N : {1, 15, 16, 33, 64, 100})
      for (int64_t K : {1, 7, 300})
        for (bool col_major : {false, true})
          for (bool accumulate : {false, true}) {
            const int64_t ldb = (N + 15) / 16 * 16 + 3, ldc = N + 5;
            const auto a = random_vector<float>(M * K, 1);
            const auto b = random_vector<float>(K * ldb, 2);
            auto c = random_vector<float>(M * ldc, 3);
            const auto c0 = c;
            const int64_t a_rs = col_major ? 1 : K, a_cs = col_major ? M : 1;
            gemm_tile<float>(M, N, K, a.data(), a_rs, a_cs, b.data(), ldb, c.data(), ldc,
                             accumulate);
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                double want = c0[i * ldc + j];
                if (j < N) {
                  double sum = 0;
                  for (int64_t k = 0; k < K; ++k)
                    sum += double(a[i * a_rs + k * a_cs]) * b[k * ldb + j];
                  want = accumulate ? want + sum : sum;
                }
                ASSERT_NEAR(c[i * ldc + j], want, 1e-4 * (1 + std::abs(want)))
                    << "M=" << M << " N=" << N << " K=" << K << " i=" << i << " j=" << j;
              }
          }
}

// tap_gemm_packed on B packed from strided layouts gives tap_gemm's bits on the
// same B laid out row by row: uneven and partial panels, several taps, float
// (the micro-kernel's panels) and double (one panel).
template <typename T>
void check_packed_matches_unpacked() {
  for (int64_t N : {1, 15, 16, 33, 100, 200})
    for (int64_t K : {1, 7, 40})
      for (int64_t taps : {1, 3})
        for (bool rows_contiguous : {false, true}) {
          const int64_t M = 13, ldb = (N + 15) / 16 * 16, ldc = N + 5, a_cs = 2;
          // The source: B_t(k, j) = src[t * b_tap + k * s_ld + j * b_js].
          const int64_t b_js = rows_contiguous ? 1 : taps * K + 1;
          const int64_t s_ld = rows_contiguous ? N + 2 : taps;
          const int64_t b_tap = rows_contiguous ? K * s_ld : 1;
          const auto src = random_vector<T>(N * taps * K * (N + 2), 4);
          std::vector<T> rows_b(static_cast<size_t>(taps * K * ldb), T(0));
          for (int64_t t = 0; t < taps; ++t)
            for (int64_t k = 0; k < K; ++k)
              for (int64_t j = 0; j < N; ++j)
                rows_b[(t * K + k) * ldb + j] = src[t * b_tap + k * s_ld + j * b_js];
          std::vector<T> packed(static_cast<size_t>(packed_b_size<T>(N, K, taps)), T(-1));
          pack_b<T>(N, K, taps, src.data(), b_tap, s_ld, b_js, packed.data());
          const auto a = random_vector<T>((M + taps) * K * a_cs, 1);
          std::vector<int64_t> rows(static_cast<size_t>(M)), tap(static_cast<size_t>(taps));
          for (int64_t i = 0; i < M; ++i) rows[i] = i * K * a_cs;
          for (int64_t t = 0; t < taps; ++t) tap[t] = t * K * a_cs;
          for (bool accumulate : {false, true}) {
            auto want = random_vector<T>(M * ldc, 3);
            auto got = want;
            tap_gemm<T>(M, N, K, taps, a.data(), rows.data(), tap.data(), a_cs, rows_b.data(),
                        K * ldb, ldb, want.data(), ldc, accumulate);
            tap_gemm_packed<T>(M, N, K, taps, a.data(), rows.data(), tap.data(), a_cs,
                               packed.data(), got.data(), ldc, accumulate);
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_EQ(got[i], want[i]) << "N=" << N << " K=" << K << " taps=" << taps
                                         << " contiguous=" << rows_contiguous << " at " << i;
          }
        }
}

TEST(GemmTile, PackedMatchesUnpacked) {
  check_packed_matches_unpacked<float>();
  check_packed_matches_unpacked<double>();
}

}  // namespace
}  // namespace kiln::cpu
