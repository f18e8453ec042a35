// The CUDA backend's runtime: devices, one stream per device, and each device's
// caching allocator (common/caching_allocator.h over cudaMalloc/cudaFree).
//
//   device_count()          devices the driver reports; 0 without a driver or GPU
//   stream(d)               device d's one stream (non-blocking), made on first use:
//                           every kiln kernel on d runs on it, so work is ordered
//                           without events and a freed block may be reused at once
//   device_malloc(n, d)     n bytes on d from its cache; MemoryError after the cache
//                           was freed and the request retried once
//   synchronize(d)          waits until d's stream is idle
//
// Errors of the CUDA runtime become CudaError (Python RuntimeError) naming the call.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/caching_allocator.h"

namespace kiln::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_cuda(cudaError_t err, const char* call, const char* file, int line);

#define KILN_CUDA_CHECK(call)                                                      \
  do {                                                                             \
    const cudaError_t kiln_err_ = (call);                                          \
    if (kiln_err_ != cudaSuccess) ::kiln::cuda::fail_cuda(kiln_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration shows here, not at the next sync.
#define KILN_CUDA_CHECK_LAUNCH() KILN_CUDA_CHECK(cudaPeekAtLastError())

struct DeviceProperties {
  std::string name;
  size_t total_memory = 0;
  int multiprocessors = 0;
  int major = 0, minor = 0;
  int l2_cache_bytes = 0;
};

int device_count();
// Why device_count() is 0 ("no CUDA driver", ...), or "" when devices exist.
std::string unavailable_reason();
DeviceProperties properties(int device);
cudaStream_t stream(int device);
void synchronize(int device);

void* device_malloc(size_t bytes, int device);
void device_free(void* ptr, int device);
AllocatorStats memory_stats(int device);
void reset_peak_memory_stats(int device);
void empty_cache(int device);

// Makes device the current one for this thread until the guard goes out of scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Threads per block and blocks for a grid-stride loop over n elements.
constexpr int kThreads = 256;
inline unsigned grid_for(long long n) {
  const long long blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 4 ? 65535 * 4 : blocks));
}

}  // namespace kiln::cuda
