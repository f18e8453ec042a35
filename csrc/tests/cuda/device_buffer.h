// Test helper: a typed device buffer from the caching allocator, filled from and
// read back to host vectors on the device's stream.
#pragma once

#include <vector>

#include "cuda/runtime.h"

namespace kiln::cuda {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n), p_(static_cast<T*>(device_malloc(n * sizeof(T), 0))) {}
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice,
                                    stream(0)));
  }
  ~DeviceBuffer() { device_free(p_, 0); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() { return p_; }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    KILN_CUDA_CHECK(cudaMemcpyAsync(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost,
                                    stream(0)));
    synchronize(0);
    return h;
  }

 private:
  size_t n_;
  T* p_;
};

#define KILN_REQUIRE_DEVICE()   \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: " << unavailable_reason()

}  // namespace kiln::cuda
