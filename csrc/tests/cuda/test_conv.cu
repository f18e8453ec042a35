// CUDA conv2d (im2col + cuBLAS, and cuDNN when built with it) against the CPU kernels
// on the same inputs: forward, both backwards and the bias gradient, for strides,
// padding, dilation, groups and the transposed geometry, plus unfold/fold.
#include <gtest/gtest.h>

#include <vector>

#include "compare.h"
#include "cpu/conv.h"
#include "cuda/conv.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

template <typename T>
void check_geometry(const ConvGeometry& g) {
  const int64_t nx = numel(g.input_shape()), nw = numel(g.weight_shape()),
                ny = numel(g.output_shape());
  const auto x = random_values<T>(nx, 1), w = random_values<T>(nw, 2), b = random_values<T>(g.K, 3),
             dy = random_values<T>(ny, 4);
  std::vector<T> y(ny), dx(nx), dw(nw), db(g.K);
  cpu::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
  cpu::conv2d_backward_input(g, dy.data(), w.data(), dx.data());
  cpu::conv2d_backward_weight(g, dy.data(), x.data(), dw.data());
  cpu::channel_sum(g.N, g.K, g.P * g.Q, dy.data(), db.data());

  DeviceBuffer<T> gx(x), gw(w), gb(b), gdy(dy), gy(ny), gdx(nx), gdw(nw), gdb(g.K);
  // Both paths: im2col + cuBLAS, and cuDNN when built with it.
  for (const bool use_cudnn : {false, true}) {
    SCOPED_TRACE(use_cudnn && cudnn_enabled() ? "cuDNN" : "im2col");
    set_cudnn_enabled(use_cudnn);
    cuda::conv2d_forward(g, gx.get(), gw.get(), gb.get(), gy.get());
    cuda::conv2d_backward_input(g, gdy.get(), gw.get(), gdx.get());
    cuda::conv2d_backward_weight(g, gdy.get(), gx.get(), gdw.get());
    cuda::channel_sum(g.N, g.K, g.P * g.Q, gdy.get(), gdb.get());
    expect_close_scaled(gy.host(), y, "y");
    expect_close_scaled(gdx.host(), dx, "dx");
    expect_close_scaled(gdw.host(), dw, "dw");
    expect_close_scaled(gdb.host(), db, "db");
  }
}

template <typename T>
void check(const Shape& x, const Shape& w, cpu::Pair stride, cpu::Pair pad, cpu::Pair dil,
           int64_t groups) {
  check_geometry<T>(cpu::conv2d_geometry("test", x, w, stride, pad, dil, groups));
}

TEST(CudaConv2d, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check<float>({2, 3, 11, 9}, {5, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1);
  check<float>({3, 4, 13, 10}, {6, 2, 3, 2}, {2, 1}, {1, 0}, {1, 2}, 2);   // groups, odd
  check<double>({2, 6, 9, 9}, {6, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 6);    // depthwise
  check<double>({1, 3, 7, 8}, {4, 3, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1);    // 1x1
  check<float>({5, 16, 8, 8}, {8, 16, 3, 3}, {1, 1}, {2, 2}, {2, 2}, 1);   // dilated
}

TEST(CudaConvTranspose2d, GeometryWithOutputPaddingEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  // The transposed convolution's maps are conv2d's on this geometry (taller input).
  check_geometry<float>(cpu::conv_transpose2d_geometry("test", {2, 4, 5, 6}, {4, 3, 3, 3},
                                                       {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1));
  check_geometry<double>(cpu::conv_transpose2d_geometry("test", {1, 4, 4, 3}, {4, 1, 2, 3},
                                                        {3, 2}, {0, 1}, {2, 0}, {1, 1}, 2));
  // output_padding >= stride (allowed below the dilation): taller than cuDNN derives.
  check_geometry<float>(cpu::conv_transpose2d_geometry("test", {2, 3, 4, 4}, {3, 2, 3, 3},
                                                       {1, 1}, {0, 0}, {1, 1}, {2, 2}, 1));
}

template <typename T>
void check_unfold(const Shape& x_shape, cpu::Pair k, cpu::Pair stride, cpu::Pair pad,
                  cpu::Pair dil) {
  const ConvGeometry g =
      cpu::conv2d_geometry("test", x_shape, {1, x_shape[1], k[0], k[1]}, stride, pad, dil, 1);
  const int64_t nx = numel(x_shape), ncol = g.N * g.C * g.R * g.S * g.P * g.Q;
  const auto x = random_values<T>(nx, 5), col = random_values<T>(ncol, 6);
  std::vector<T> col_cpu(ncol), x_cpu(nx);
  cpu::unfold_images(g, x.data(), col_cpu.data());
  cpu::fold_images(g, col.data(), x_cpu.data());
  DeviceBuffer<T> gx(x), gcol(col), gcol_out(ncol), gx_out(nx);
  cuda::unfold_images(g, gx.get(), gcol_out.get());
  cuda::fold_images(g, gcol.get(), gx_out.get());
  expect_close_scaled(gcol_out.host(), col_cpu, "unfold");
  expect_close_scaled(gx_out.host(), x_cpu, "fold");
}

TEST(CudaUnfoldFold, EqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_unfold<float>({2, 3, 9, 7}, {3, 2}, {2, 1}, {1, 0}, {1, 2});
  check_unfold<double>({1, 2, 5, 5}, {2, 2}, {1, 1}, {0, 0}, {1, 1});
}

TEST(CudaConv2d, EmptyBatchGivesZeroWeightGradient) {
  KILN_REQUIRE_DEVICE();
  const ConvGeometry g = cpu::conv2d_geometry("test", {0, 2, 5, 5}, {3, 2, 3, 3}, {1, 1},
                                              {0, 0}, {1, 1}, 1);
  DeviceBuffer<float> dw(3 * 2 * 9);
  cuda::conv2d_backward_weight<float>(g, nullptr, nullptr, dw.get());
  for (float v : dw.host()) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace kiln::cuda
