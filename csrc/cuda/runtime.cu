// Devices, streams and the per-device caching allocators (runtime.h).
#include "cuda/runtime.h"

#include <memory>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "common/check.h"

namespace kiln::cuda {

void fail_cuda(cudaError_t err, const char* call, const char* file, int line) {
  std::ostringstream os;
  os << "CUDA error: " << cudaGetErrorString(err) << " (" << cudaGetErrorName(err) << ") in "
     << call << " at " << file << ":" << line;
  if (err == cudaErrorMemoryAllocation) throw MemoryError(os.str());
  throw CudaError(os.str());
}

namespace {

// cudaMalloc/cudaFree on one device; nullptr when the device is out of memory.
struct CudaRaw {
  int device;
  void* allocate(size_t n) {
    DeviceGuard guard(device);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, n);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error so the retry starts clean
      return nullptr;
    }
    KILN_CUDA_CHECK(err);
    return p;
  }
  void release(void* p) {
    DeviceGuard guard(device);
    // Blocks go back to the device only when the cache is emptied: wait for the
    // stream's queued kernels that may still read them.
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
    KILN_CUDA_CHECK(cudaFree(p));
  }
};

struct Device {
  std::once_flag stream_once;
  cudaStream_t stream = nullptr;
  std::unique_ptr<CachingAllocator<CudaRaw>> allocator;
  std::mutex checks_mutex;
  std::vector<DeferredCheck> checks;  // registered during the capture under way
};

struct Devices {
  int count = 0;
  std::string reason;
  std::vector<std::unique_ptr<Device>> devices;

  Devices() {
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice) {
      reason = std::string("no CUDA driver or device (") + cudaGetErrorString(err) + ")";
      count = 0;
      cudaGetLastError();
    } else if (err != cudaSuccess) {
      reason = cudaGetErrorString(err);
      count = 0;
      cudaGetLastError();
    } else if (count == 0) {
      reason = "no CUDA device";
    }
    for (int d = 0; d < count; ++d) {
      devices.push_back(std::make_unique<Device>());
      devices.back()->allocator = std::make_unique<CachingAllocator<CudaRaw>>(CudaRaw{d});
    }
  }
};

// Made on first use and never destroyed: at interpreter exit the driver may already
// be gone, and freeing device memory then would fail.
Devices& all() {
  static Devices* devices = new Devices();
  return *devices;
}

Device& get(int device) {
  Devices& ds = all();
  KILN_CHECK(device >= 0 && device < ds.count, "cuda: device ", device,
             " does not exist (", ds.count, " CUDA device", ds.count == 1 ? "" : "s",
             ds.reason.empty() ? "" : ": ", ds.reason, ")");
  return *ds.devices[device];
}

}  // namespace

int device_count() { return all().count; }

int current_device() {
  int device = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

std::string unavailable_reason() { return all().reason; }

DeviceProperties properties(int device) {
  get(device);
  cudaDeviceProp prop{};
  KILN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return {prop.name, prop.totalGlobalMem, prop.multiProcessorCount, prop.major, prop.minor,
          prop.l2CacheSize};
}

cudaStream_t stream(int device) {
  Device& d = get(device);
  std::call_once(d.stream_once, [&] {
    DeviceGuard guard(device);
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
  });
  return d.stream;
}

void synchronize(int device) { KILN_CUDA_CHECK(cudaStreamSynchronize(stream(device))); }

void* device_malloc(size_t bytes, int device) { return get(device).allocator->allocate(bytes); }

void device_free(void* ptr, int device) { get(device).allocator->release(ptr); }

AllocatorStats memory_stats(int device) { return get(device).allocator->stats(); }

void reset_peak_memory_stats(int device) { get(device).allocator->reset_peak(); }

void empty_cache(int device) { get(device).allocator->empty_cache(); }

void begin_capture_pool(int device, uint64_t pool) {
  Device& d = get(device);
  d.allocator->begin_pool(pool);
  std::lock_guard<std::mutex> lock(d.checks_mutex);
  d.checks.clear();  // a failed capture's
}

void end_capture_pool(int device) { get(device).allocator->end_pool(); }

void release_capture_pool(int device, uint64_t pool) { get(device).allocator->release_pool(pool); }

bool capturing(int device) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  KILN_CUDA_CHECK(cudaStreamIsCapturing(stream(device), &status));
  return status != cudaStreamCaptureStatusNone;
}

std::shared_ptr<void> device_slot(size_t bytes, int device) {
  return std::shared_ptr<void>(device_malloc(bytes, device),
                               [device](void* p) { device_free(p, device); });
}

void defer_check(int device, DeferredCheck check) {
  Device& d = get(device);
  std::lock_guard<std::mutex> lock(d.checks_mutex);
  d.checks.push_back(std::move(check));
}

std::vector<DeferredCheck> take_deferred_checks(int device) {
  Device& d = get(device);
  std::lock_guard<std::mutex> lock(d.checks_mutex);
  return std::exchange(d.checks, {});
}

void run_deferred_checks(int device, const std::vector<DeferredCheck>& checks) {
  DeviceGuard guard(device);
  for (const DeferredCheck& check : checks) check.verify();
}

DeviceGuard::DeviceGuard(int device) {
  KILN_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) KILN_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() { cudaSetDevice(previous_); }

}  // namespace kiln::cuda
