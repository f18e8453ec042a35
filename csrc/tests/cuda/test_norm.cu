// CUDA batch (plain, and fused with a residual add + ReLU), group, layer and local
// response normalization against the CPU kernels on the same inputs: outputs, saved
// statistics, running statistics and every gradient.
#include <gtest/gtest.h>

#include <vector>

#include "compare.h"
#include "cpu/norm.h"
#include "cuda/norm.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

// Batch norm's epilogue: none, the fused ReLU, or the fused residual add + ReLU.
enum class Epilogue { kNone, kRelu, kResidualRelu };

// The CPU's and the device's batch norm (plain or fused) on the same inputs: outputs,
// saved and running statistics and every gradient (dresidual included).
template <typename T>
void check_batch_norm(const BatchNormSizes& sz, bool training, bool affine,
                      Epilogue epilogue = Epilogue::kNone) {
  const bool fused = epilogue != Epilogue::kNone, add = epilogue == Epilogue::kResidualRelu;
  const int64_t n = sz.n * sz.c * sz.s;
  const auto x = random_values<T>(n, 1, -2, 3), dy = random_values<T>(n, 2),
             w = random_values<T>(sz.c, 3, 0.5, 1.5), b = random_values<T>(sz.c, 4),
             rm0 = random_values<T>(sz.c, 5), rv0 = random_values<T>(sz.c, 6, 0.5, 2),
             r = random_values<T>(n, 7);
  const T* wp = affine ? w.data() : nullptr;
  const T* bp = affine ? b.data() : nullptr;
  std::vector<T> y(n), mean(sz.c), invstd(sz.c), rm = rm0, rv = rv0, dx(n), dw(sz.c), db(sz.c),
      dr(n);
  if (fused) {
    kiln::batch_norm_relu_forward(x.data(), add ? r.data() : nullptr, y.data(), sz, wp, bp,
                                  rm.data(), rv.data(), training, 0.1, 1e-5, mean.data(),
                                  invstd.data());
    kiln::batch_norm_relu_backward(dy.data(), y.data(), x.data(), sz, wp, mean.data(),
                                   invstd.data(), training, dx.data(), dw.data(), db.data(),
                                   add ? dr.data() : nullptr);
  } else {
    kiln::batch_norm_forward(x.data(), y.data(), sz, wp, bp, rm.data(), rv.data(), training, 0.1,
                             1e-5, mean.data(), invstd.data());
    kiln::batch_norm_backward(dy.data(), x.data(), sz, wp, mean.data(), invstd.data(), training,
                              dx.data(), dw.data(), db.data());
  }

  DeviceBuffer<T> gx(x), gdy(dy), gw(w), gb(b), grm(rm0), grv(rv0), gr(r), gy(n), gmean(sz.c),
      ginv(sz.c), gdx(n), gdw(sz.c), gdb(sz.c), gdr(n);
  T* gwp = affine ? gw.get() : nullptr;
  T* gbp = affine ? gb.get() : nullptr;
  if (fused) {
    cuda::batch_norm_relu_forward(gx.get(), add ? gr.get() : nullptr, gy.get(), sz, gwp, gbp,
                                  grm.get(), grv.get(), training, 0.1, 1e-5, gmean.get(),
                                  ginv.get());
    // The CPU's output: the ReLU mask must be the same for the gradients to compare.
    DeviceBuffer<T> cpu_y(y);
    cuda::batch_norm_relu_backward(gdy.get(), cpu_y.get(), gx.get(), sz, gwp, gmean.get(),
                                   ginv.get(), training, gdx.get(), gdw.get(), gdb.get(),
                                   add ? gdr.get() : nullptr);
  } else {
    cuda::batch_norm_forward(gx.get(), gy.get(), sz, gwp, gbp, grm.get(), grv.get(), training,
                             0.1, 1e-5, gmean.get(), ginv.get());
    cuda::batch_norm_backward(gdy.get(), gx.get(), sz, gwp, gmean.get(), ginv.get(), training,
                              gdx.get(), gdw.get(), gdb.get());
  }
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gmean.host(), mean, "save_mean");
  expect_close_scaled(ginv.host(), invstd, "save_invstd");
  expect_close_scaled(grm.host(), rm, "running_mean");
  expect_close_scaled(grv.host(), rv, "running_var");
  expect_close_scaled(gdx.host(), dx, "dx");
  expect_close_scaled(gdw.host(), dw, "dweight");
  expect_close_scaled(gdb.host(), db, "dbias");
  if (add) EXPECT_EQ(gdr.host(), dr);  // dy masked by the same y: exact
}

TEST(CudaBatchNorm, TrainAndEvalEqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_batch_norm<float>({7, 5, 33}, true, true);
  check_batch_norm<float>({300, 3, 1}, true, false);
  check_batch_norm<double>({4, 6, 17}, true, true);
  check_batch_norm<float>({3, 4, 10}, false, true);
  check_batch_norm<double>({2, 3, 5}, false, false);
}

TEST(CudaBatchNorm, FusedReluAndResidualEqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_batch_norm<float>({7, 5, 33}, true, true, Epilogue::kResidualRelu);
  check_batch_norm<float>({9, 3, 1}, true, false, Epilogue::kRelu);
  check_batch_norm<double>({4, 6, 17}, true, true, Epilogue::kResidualRelu);
  check_batch_norm<float>({3, 4, 10}, false, true, Epilogue::kResidualRelu);
  check_batch_norm<double>({2, 3, 5}, false, false, Epilogue::kRelu);
}

template <typename T>
void check_group_norm(const GroupNormSizes& sz) {
  const int64_t n = sz.n * sz.c * sz.s, stats = sz.n * sz.groups;
  const auto x = random_values<T>(n, 7, -1, 2), dy = random_values<T>(n, 8),
             w = random_values<T>(sz.c, 9), b = random_values<T>(sz.c, 10);
  std::vector<T> y(n), mean(stats), rstd(stats), dx(n), dw(sz.c), db(sz.c);
  kiln::group_norm_forward(x.data(), y.data(), sz, w.data(), b.data(), 1e-5, mean.data(),
                           rstd.data());
  kiln::group_norm_backward(dy.data(), x.data(), sz, w.data(), mean.data(), rstd.data(),
                            dx.data(), dw.data(), db.data());
  DeviceBuffer<T> gx(x), gdy(dy), gw(w), gb(b), gy(n), gmean(stats), grstd(stats), gdx(n),
      gdw(sz.c), gdb(sz.c);
  cuda::group_norm_forward(gx.get(), gy.get(), sz, gw.get(), gb.get(), 1e-5, gmean.get(),
                           grstd.get());
  cuda::group_norm_backward(gdy.get(), gx.get(), sz, gw.get(), gmean.get(), grstd.get(), gdx.get(),
                            gdw.get(), gdb.get());
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gmean.host(), mean, "mean");
  expect_close_scaled(grstd.host(), rstd, "rstd");
  expect_close_scaled(gdx.host(), dx, "dx");
  expect_close_scaled(gdw.host(), dw, "dweight");
  expect_close_scaled(gdb.host(), db, "dbias");
}

TEST(CudaGroupNorm, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_group_norm<float>({3, 6, 2, 29});
  check_group_norm<double>({2, 8, 8, 5});
  check_group_norm<float>({1, 4, 1, 1000});
}

template <typename T>
void check_layer_norm(const LayerNormSizes& sz, bool affine) {
  const int64_t n = sz.rows * sz.cols;
  const auto x = random_values<T>(n, 11, -1, 3), dy = random_values<T>(n, 12),
             w = random_values<T>(sz.cols, 13), b = random_values<T>(sz.cols, 14);
  const T* wp = affine ? w.data() : nullptr;
  const T* bp = affine ? b.data() : nullptr;
  std::vector<T> y(n), mean(sz.rows), rstd(sz.rows), dx(n), dw(sz.cols), db(sz.cols);
  kiln::layer_norm_forward(x.data(), y.data(), sz, wp, bp, 1e-5, mean.data(), rstd.data());
  kiln::layer_norm_backward(dy.data(), x.data(), sz, wp, mean.data(), rstd.data(), dx.data(),
                            dw.data(), db.data());
  DeviceBuffer<T> gx(x), gdy(dy), gw(w), gb(b), gy(n), gmean(sz.rows), grstd(sz.rows), gdx(n),
      gdw(sz.cols), gdb(sz.cols);
  cuda::layer_norm_forward(gx.get(), gy.get(), sz, affine ? gw.get() : nullptr,
                           affine ? gb.get() : nullptr, 1e-5, gmean.get(), grstd.get());
  cuda::layer_norm_backward(gdy.get(), gx.get(), sz, affine ? gw.get() : nullptr, gmean.get(),
                            grstd.get(), gdx.get(), gdw.get(), gdb.get());
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gmean.host(), mean, "mean");
  expect_close_scaled(grstd.host(), rstd, "rstd");
  expect_close_scaled(gdx.host(), dx, "dx");
  expect_close_scaled(gdw.host(), dw, "dweight");
  expect_close_scaled(gdb.host(), db, "dbias");
}

TEST(CudaLayerNorm, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_layer_norm<float>({37, 129}, true);
  check_layer_norm<float>({5, 3}, false);
  check_layer_norm<double>({8, 1000}, true);
}

template <typename T>
void check_lrn(const BatchNormSizes& sz, int64_t size) {
  const int64_t n = sz.n * sz.c * sz.s;
  const LocalResponseNormArgs args{size, 1e-2, 0.75, 2.0};
  const auto x = random_values<T>(n, 15, -3, 3), dy = random_values<T>(n, 16);
  std::vector<T> y(n), dx(n);
  kiln::local_response_norm_forward(x.data(), y.data(), sz, args);
  kiln::local_response_norm_backward(dy.data(), x.data(), dx.data(), sz, args);
  DeviceBuffer<T> gx(x), gdy(dy), gy(n), gdx(n);
  cuda::local_response_norm_forward(gx.get(), gy.get(), sz, args);
  cuda::local_response_norm_backward(gdy.get(), gx.get(), gdx.get(), sz, args);
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gdx.host(), dx, "dx");
}

TEST(CudaLocalResponseNorm, EqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_lrn<float>({2, 7, 13}, 3);
  check_lrn<double>({3, 5, 4}, 4);
  check_lrn<float>({1, 3, 9}, 8);  // window wider than the channels
}

}  // namespace
}  // namespace kiln::cuda
