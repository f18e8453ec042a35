// A caching allocator for device memory: freed blocks are kept in size bins and
// handed out again, so a training step that allocates the same activation and
// gradient sizes every iteration stops calling the device's malloc after warm-up.
//
//   request n bytes -> round up to its bin size r(n):
//       n <= 1 MiB : the next multiple of 512 B        (small blocks, exact bins)
//       n >  1 MiB : the next multiple of 2 MiB         (large blocks)
//   allocate(n):  the smallest cached block of size s with r(n) <= s <= r(n) + r(n)/8
//                 (small: s == r(n)); else raw.allocate(r(n)); if that fails,
//                 release every cached block to the device and try once more;
//                 if that fails too, throw MemoryError naming n and the pool's state
//   release(p):   p's block goes back to its bin (never to the device)
//   empty_cache(): every cached block goes back to the device
//
// Statistics (bytes of whole blocks, as PyTorch counts them): allocated (in use),
// peak allocated since the last reset, reserved (in use + cached).
//
// Raw is the device: `void* allocate(size_t)` returns nullptr when the device is
// out of memory, `void release(void*)` frees. The policy is written once here, on
// no particular device, so the C++ tests check it with a fake device on the CPU.
// Blocks are reused in the order of one stream: kiln runs each device's work on one
// stream, so a block freed after its last use on that stream is safe to hand out to
// the next kernel queued behind it.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "common/check.h"

namespace kiln {

struct AllocatorStats {
  size_t allocated = 0;       // bytes of blocks handed out and not yet released
  size_t peak_allocated = 0;  // the most `allocated` reached since reset_peak()
  size_t reserved = 0;        // bytes held from the device: allocated + cached
  size_t raw_allocations = 0; // calls that reached the device's malloc
};

template <typename Raw>
class CachingAllocator {
 public:
  static constexpr size_t kSmallLimit = size_t(1) << 20;   // 1 MiB
  static constexpr size_t kSmallRound = 512;
  static constexpr size_t kLargeRound = size_t(2) << 20;   // 2 MiB

  explicit CachingAllocator(Raw raw = Raw()) : raw_(std::move(raw)) {}
  ~CachingAllocator() { empty_cache(); }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  static size_t bin_size(size_t n) {
    if (n == 0) n = 1;
    const size_t unit = n <= kSmallLimit ? kSmallRound : kLargeRound;
    return (n + unit - 1) / unit * unit;
  }

  void* allocate(size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t size = bin_size(n);
    void* p = take_cached(size);
    if (!p) p = allocate_raw(n, size);
    in_use_.emplace(p, size);
    stats_.allocated += size;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    return p;
  }

  void release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = in_use_.find(p);
    KILN_CHECK(it != in_use_.end(), "caching allocator: release of a pointer it did not allocate");
    cached_.emplace(it->second, p);
    stats_.allocated -= it->second;
    in_use_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached();
  }

  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated = stats_.allocated;
  }

  size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_.reserved - stats_.allocated;
  }

 private:
  // The smallest cached block that fits size without wasting more than an eighth;
  // size becomes that block's own size, which is what its owner holds.
  void* take_cached(size_t& size) {
    auto it = cached_.lower_bound(size);
    const size_t limit = size <= kSmallLimit ? size : size + size / 8;
    if (it == cached_.end() || it->first > limit) return nullptr;
    void* p = it->second;
    size = it->first;
    cached_.erase(it);
    return p;
  }

  void* allocate_raw(size_t requested, size_t size) {
    void* p = raw_.allocate(size);
    if (!p && !cached_.empty()) {
      release_cached();
      p = raw_.allocate(size);
    }
    if (!p)
      fail<MemoryError>("out of device memory: tried to allocate ", requested, " bytes (",
                        size, " with rounding); ", stats_.allocated,
                        " bytes are in use by kiln and nothing was left to free from its cache");
    ++stats_.raw_allocations;
    stats_.reserved += size;
    return p;
  }

  void release_cached() {
    for (auto& [size, p] : cached_) {
      raw_.release(p);
      stats_.reserved -= size;
    }
    cached_.clear();
  }

  Raw raw_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> cached_;       // block size -> free block
  std::unordered_map<void*, size_t> in_use_;  // block -> its size
  AllocatorStats stats_;
};

}  // namespace kiln
