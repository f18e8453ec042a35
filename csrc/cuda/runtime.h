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
// CUDA graphs (kiln.cuda.graphs): while d's stream is captured, begin_capture_pool(d, id)
// routes d's allocations, kernels' scratch included, to the allocator's private pool id
// (common/caching_allocator.h), which keeps them from other work while the graph lives;
// release_capture_pool(d, id) when its graphs are gone. A check a kernel makes on the
// host when it runs eagerly (a class target out of range) cannot wait for the device
// inside a capture: capturing(d) tells the kernel, which then registers a DeferredCheck
// (its verdict in device memory the check owns) with defer_check; the graph takes them
// with take_deferred_checks after the capture and runs them after each replay.
//
// Errors of the CUDA runtime become CudaError (Python RuntimeError) naming the call.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

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
int current_device();  // this thread's (cudaSetDevice), 0 unless a DeviceGuard says otherwise
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

void begin_capture_pool(int device, uint64_t pool);
void end_capture_pool(int device);
void release_capture_pool(int device, uint64_t pool);
bool capturing(int device);  // whether device's stream is being captured

// n bytes of device memory owned by the pointer (device_free when the last owner goes).
std::shared_ptr<void> device_slot(size_t bytes, int device);

struct DeferredCheck {
  std::shared_ptr<void> memory;  // what the captured kernels write and verify reads
  std::function<void()> verify;  // reads it (waiting for the stream) and throws as eagerly
};
void defer_check(int device, DeferredCheck check);
std::vector<DeferredCheck> take_deferred_checks(int device);
// Runs each check on device (after a replay); the first failing one throws.
void run_deferred_checks(int device, const std::vector<DeferredCheck>& checks);

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
