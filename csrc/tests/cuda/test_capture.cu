// What a CUDA graph capture of kiln's stream may record: kernels allocate from the
// graph's private pool while it is begun, and the kernels whose work needs the host
// (gradient clipping's tables and norms) refuse to be captured instead of recording a
// replay that would read freed host memory. Skips without a device.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/optim.h"
#include "cuda/runtime.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

// Captures what body queues on device 0's stream into pool `pool`; returns the graph.
template <typename Body>
cudaGraph_t capture(uint64_t pool, Body body) {
  cudaStream_t s = stream(0);
  begin_capture_pool(0, pool);
  KILN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  try {
    body();
  } catch (...) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(s, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    end_capture_pool(0);
    throw;
  }
  cudaGraph_t graph = nullptr;
  KILN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  end_capture_pool(0);
  return graph;
}

TEST(CudaCapture, AllocationsWhileCapturingComeFromThePrivatePool) {
  KILN_REQUIRE_DEVICE();
  synchronize(0);
  void* inside = nullptr;
  cudaGraph_t graph = capture(77, [&] {
    EXPECT_TRUE(capturing(0));
    inside = device_malloc(1000, 0);
    device_free(inside, 0);  // back to pool 77, not to other work
  });
  EXPECT_FALSE(capturing(0));
  void* outside = device_malloc(1000, 0);
  EXPECT_NE(outside, inside);
  device_free(outside, 0);
  KILN_CUDA_CHECK(cudaGraphDestroy(graph));
  release_capture_pool(0, 77);
  void* after = device_malloc(1000, 0);  // the pool's blocks serve everyone again
  device_free(after, 0);
}

TEST(CudaCapture, GradientClippingRefusesToBeCaptured) {
  KILN_REQUIRE_DEVICE();
  DeviceBuffer<float> g(std::vector<float>{3, 4});
  const std::vector<Span<float>> grads{{g.get(), 2}};
  const std::vector<Span<const float>> read{{g.get(), 2}};
  synchronize(0);
  EXPECT_THROW(capture(78, [&] { cuda::tensor_norms<float>(read, 2.0); }), CudaError);
  EXPECT_THROW(capture(78, [&] { cuda::scale_<float>(grads, 0.5); }), CudaError);
  EXPECT_THROW(capture(78, [&] { cuda::clamp_<float>(grads, -1.0, 1.0); }), CudaError);
  release_capture_pool(0, 78);
  EXPECT_EQ(cuda::tensor_norms<float>(read, 2.0), std::vector<double>{5.0});  // eagerly: fine
}

}  // namespace
}  // namespace kiln::cuda
