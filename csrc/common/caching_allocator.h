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
//   empty_cache(): every cached block of the general pool goes back to the device
//
// Private pools (a CUDA graph's memory, as PyTorch's graph pools): between
// begin_pool(id) and end_pool() every allocation comes from pool id (its own cached
// blocks, else the device) and a block of pool id goes back to pool id's cache when
// released, so memory a captured graph's kernels use, scratch included, is never
// handed to other work while the graph may replay. A freed block may be reused within
// its pool: captured work replays in the order it was recorded. While a pool is
// active an allocation the device refuses does not free the general cache (that waits
// for the device, which a capture forbids): it is a MemoryError at once.
// release_pool(id) (the pool's graphs are gone) moves its cached blocks to the
// general cache, and its blocks still in use go there when released. empty_cache()
// never touches a live private pool.
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
#include <cstdint>
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
  ~CachingAllocator() {
    for (auto& [id, bins] : cached_)
      for (auto& [size, p] : bins) raw_.release(p);
  }
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
    void* p = take_cached(cached_[pool_], size);
    if (!p) p = allocate_raw(n, size);
    in_use_.emplace(p, Block{size, pool_});
    stats_.allocated += size;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    return p;
  }

  void release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = in_use_.find(p);
    KILN_CHECK(it != in_use_.end(), "caching allocator: release of a pointer it did not allocate");
    const Block block = it->second;
    cached_[cached_.count(block.pool) ? block.pool : 0].emplace(block.size, p);
    stats_.allocated -= block.size;
    in_use_.erase(it);
  }

  // Allocations come from private pool id (> 0) until end_pool().
  void begin_pool(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    KILN_CHECK(id > 0, "caching allocator: a private pool's id must be positive");
    KILN_CHECK(pool_ == 0, "caching allocator: pool ", id, " begun while pool ", pool_,
               " is active (captures do not nest)");
    pool_ = id;
    cached_[id];  // the pool is live from now until release_pool(id)
  }

  void end_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_ = 0;
  }

  // Pool id's graphs are gone: its blocks join the general pool.
  void release_pool(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    KILN_CHECK(id != pool_, "caching allocator: pool ", id, " released while active");
    auto it = cached_.find(id);
    if (id == 0 || it == cached_.end()) return;
    cached_[0].insert(it->second.begin(), it->second.end());
    cached_.erase(it);
  }

  uint64_t active_pool() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return pool_;
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
  using Bins = std::multimap<size_t, void*>;  // block size -> free block
  struct Block {
    size_t size;
    uint64_t pool;
  };

  // The smallest cached block of bins that fits size without wasting more than an
  // eighth; size becomes that block's own size, which is what its owner holds.
  static void* take_cached(Bins& bins, size_t& size) {
    auto it = bins.lower_bound(size);
    const size_t limit = size <= kSmallLimit ? size : size + size / 8;
    if (it == bins.end() || it->first > limit) return nullptr;
    void* p = it->second;
    size = it->first;
    bins.erase(it);
    return p;
  }

  void* allocate_raw(size_t requested, size_t size) {
    void* p = raw_.allocate(size);
    if (!p && pool_ == 0 && !cached_[0].empty()) {
      release_cached();
      p = raw_.allocate(size);
    }
    if (!p)
      fail<MemoryError>("out of device memory: tried to allocate ", requested, " bytes (",
                        size, " with rounding); ", stats_.allocated, " bytes are in use by kiln",
                        pool_ == 0 ? " and nothing was left to free from its cache"
                                   : " (while capturing a CUDA graph its cache is kept)");
    ++stats_.raw_allocations;
    stats_.reserved += size;
    return p;
  }

  // The general pool's cached blocks back to the device.
  void release_cached() {
    Bins& bins = cached_[0];
    for (auto& [size, p] : bins) {
      raw_.release(p);
      stats_.reserved -= size;
    }
    bins.clear();
  }

  Raw raw_;
  mutable std::mutex mutex_;
  std::map<uint64_t, Bins> cached_{{0, Bins()}};  // pool (0: general; else live) -> bins
  std::unordered_map<void*, Block> in_use_;       // block -> its size and pool
  uint64_t pool_ = 0;                              // the pool allocations come from
  AllocatorStats stats_;
};

}  // namespace kiln
