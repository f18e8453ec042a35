// The CUDA runtime on a real device: streams, the caching allocator over cudaMalloc,
// out-of-memory as MemoryError. Every test skips when no device is present.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

#define KILN_REQUIRE_DEVICE() \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: " << unavailable_reason()

TEST(CudaRuntime, DeviceCountNeverThrows) {
  const int n = device_count();
  EXPECT_GE(n, 0);
  if (n == 0) EXPECT_FALSE(unavailable_reason().empty());
  EXPECT_THROW(stream(n), ValueError);  // one past the last device
}

__global__ void fill_iota(float* x, long long n) {
  for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    x[i] = static_cast<float>(i);
}

TEST(CudaRuntime, AllocatorServesKernelsAndReusesBlocks) {
  KILN_REQUIRE_DEVICE();
  const long long n = 1 << 20;
  empty_cache(0);
  const size_t before = memory_stats(0).raw_allocations;
  float* x = static_cast<float*>(device_malloc(n * sizeof(float), 0));
  fill_iota<<<grid_for(n), kThreads, 0, stream(0)>>>(x, n);
  KILN_CUDA_CHECK_LAUNCH();
  std::vector<float> host(n);
  KILN_CUDA_CHECK(cudaMemcpyAsync(host.data(), x, n * sizeof(float), cudaMemcpyDeviceToHost,
                                  stream(0)));
  synchronize(0);
  for (long long i = 0; i < n; i += 4097) ASSERT_EQ(host[i], float(i));
  device_free(x, 0);
  void* again = device_malloc(n * sizeof(float), 0);
  EXPECT_EQ(again, static_cast<void*>(x));
  EXPECT_EQ(memory_stats(0).raw_allocations, before + 1);
  device_free(again, 0);
  empty_cache(0);
  EXPECT_EQ(memory_stats(0).reserved, 0u);
}

TEST(CudaRuntime, OutOfMemoryIsMemoryErrorNamingTheSize) {
  KILN_REQUIRE_DEVICE();
  const size_t too_much = properties(0).total_memory * 2;
  try {
    device_malloc(too_much, 0);
    FAIL() << "expected MemoryError";
  } catch (const MemoryError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(too_much)), std::string::npos)
        << e.what();
  }
  // The device still works after the refusal.
  void* p = device_malloc(1024, 0);
  device_free(p, 0);
}

}  // namespace
}  // namespace kiln::cuda
