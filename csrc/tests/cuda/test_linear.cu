// CUDA linear and matmul (cuBLAS) against the CPU kernels on the same inputs.
#include <gtest/gtest.h>

#include <vector>

#include "compare.h"
#include "cpu/linear.h"
#include "cuda/linear.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

template <typename T>
void check_linear(int64_t M, int64_t K, int64_t N, bool with_bias) {
  const auto x = random_values<T>(M * K, 1), w = random_values<T>(N * K, 2),
             b = random_values<T>(N, 3), dy = random_values<T>(M * N, 4);
  std::vector<T> y(M * N), dx(M * K), dw(N * K), db(N);
  kiln::linear_forward(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), M, K, N);
  kiln::linear_backward(dy.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), M, K, N);

  DeviceBuffer<T> gx(x), gw(w), gb(b), gdy(dy), gy(M * N), gdx(M * K), gdw(N * K), gdb(N);
  cuda::linear_forward(gx.get(), gw.get(), with_bias ? gb.get() : nullptr, gy.get(), M, K, N);
  cuda::linear_backward(gdy.get(), gx.get(), gw.get(), gdx.get(), gdw.get(), gdb.get(), M, K, N);
  expect_close_scaled(gy.host(), y, "y");
  expect_close_scaled(gdx.host(), dx, "dx");
  expect_close_scaled(gdw.host(), dw, "dw");
  expect_close_scaled(gdb.host(), db, "db");
}

TEST(CudaLinear, ForwardAndBackwardEqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_linear<float>(37, 129, 11, true);
  check_linear<float>(1, 5, 300, false);
  check_linear<double>(64, 33, 65, true);
  check_linear<double>(3, 0, 4, true);  // no features: y = b, dw empty
}

template <typename T>
void check_matmul(const Shape& a_shape, const Shape& b_shape) {
  const Shape a_batch(a_shape.begin(), a_shape.end() - 2);
  const Shape b_batch(b_shape.begin(), b_shape.end() - 2);
  const BatchBroadcast bb = broadcast_batches(a_batch, b_batch, "test");
  const int64_t M = a_shape[a_shape.size() - 2], K = a_shape.back(), N = b_shape.back();
  const int64_t batch = static_cast<int64_t>(bb.a_index.size());
  const auto a = random_values<T>(bb.a_count * M * K, 5);
  const auto b = random_values<T>(bb.b_count * K * N, 6);
  const auto dc = random_values<T>(batch * M * N, 7);
  std::vector<T> c(batch * M * N), da(a.size()), db(b.size());
  kiln::matmul_forward(a.data(), b.data(), c.data(), bb, M, K, N);
  kiln::matmul_backward(dc.data(), a.data(), b.data(), da.data(), db.data(), bb, M, K, N);

  DeviceBuffer<T> ga(a), gb(b), gdc(dc), gc(c.size()), gda(a.size()), gdb(b.size());
  cuda::matmul_forward(ga.get(), gb.get(), gc.get(), bb, M, K, N);
  cuda::matmul_backward(gdc.get(), ga.get(), gb.get(), gda.get(), gdb.get(), bb, M, K, N);
  expect_close_scaled(gc.host(), c, "c");
  expect_close_scaled(gda.host(), da, "da");
  expect_close_scaled(gdb.host(), db, "db");
}

TEST(CudaMatmul, EveryBroadcastPatternEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_matmul<float>({7, 13}, {13, 5});            // plain
  check_matmul<float>({4, 7, 13}, {13, 5});         // folds into one product
  check_matmul<double>({4, 7, 13}, {4, 13, 5});     // strided batches
  check_matmul<float>({7, 13}, {3, 13, 5});         // A broadcast: dA summed
  check_matmul<double>({2, 1, 3, 4}, {1, 3, 4, 6}); // general pattern: one product per output
  check_matmul<float>({2, 5, 0}, {2, 0, 3});        // K = 0: zeros
}

}  // namespace
}  // namespace kiln::cuda
