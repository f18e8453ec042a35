// The device caching allocator's policy, on a fake device that lives on the CPU:
// bins, reuse, statistics, the free-the-cache-and-retry-once rule on OOM, and the
// private pools of CUDA graphs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unordered_map>
#include <string>

#include "common/caching_allocator.h"

namespace kiln {
namespace {

// A device with `capacity` bytes that records every malloc and free it sees.
struct FakeDevice {
  size_t capacity = size_t(64) << 20;
  size_t used = 0;
  int mallocs = 0, frees = 0, refused = 0;
};

struct FakeRaw {
  FakeDevice* dev;
  void* allocate(size_t n) {
    if (dev->used + n > dev->capacity) {
      ++dev->refused;
      return nullptr;
    }
    void* p = std::malloc(n);
    dev->used += n;
    ++dev->mallocs;
    sizes()[p] = n;
    return p;
  }
  void release(void* p) {
    dev->used -= sizes()[p];
    sizes().erase(p);
    ++dev->frees;
    std::free(p);
  }
  static std::unordered_map<void*, size_t>& sizes() {
    static std::unordered_map<void*, size_t> s;
    return s;
  }
};

using Allocator = CachingAllocator<FakeRaw>;

TEST(CachingAllocator, BinSizes) {
  EXPECT_EQ(Allocator::bin_size(0), 512u);
  EXPECT_EQ(Allocator::bin_size(1), 512u);
  EXPECT_EQ(Allocator::bin_size(512), 512u);
  EXPECT_EQ(Allocator::bin_size(513), 1024u);
  EXPECT_EQ(Allocator::bin_size(size_t(1) << 20), size_t(1) << 20);
  EXPECT_EQ(Allocator::bin_size((size_t(1) << 20) + 1), size_t(2) << 20);
  EXPECT_EQ(Allocator::bin_size((size_t(5) << 20) + 3), size_t(6) << 20);
}

TEST(CachingAllocator, ReleasedBlocksAreReusedWithoutTheDevice) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  void* p = a.allocate(1000);
  void* q = a.allocate(3000);
  EXPECT_EQ(dev.mallocs, 2);
  a.release(p);
  a.release(q);
  // A training step asks for the same sizes again: no new device allocation.
  for (int step = 0; step < 5; ++step) {
    void* p2 = a.allocate(1000);
    void* q2 = a.allocate(2900);  // same 3072-byte bin as 3000
    EXPECT_TRUE((p2 == p && q2 == q));
    a.release(p2);
    a.release(q2);
  }
  EXPECT_EQ(dev.mallocs, 2);
  EXPECT_EQ(dev.frees, 0);
  EXPECT_EQ(a.stats().raw_allocations, 2u);
}

TEST(CachingAllocator, SmallBinsAreExactLargeBlocksWasteAtMostAnEighth) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  void* small = a.allocate(2048);
  a.release(small);
  void* other = a.allocate(1024);  // a smaller small request does not take the 2 KiB block
  EXPECT_NE(other, small);
  EXPECT_EQ(dev.mallocs, 2);

  void* big = a.allocate(size_t(18) << 20);
  a.release(big);
  void* reused = a.allocate(size_t(16) << 20);  // 18 <= 16 + 16/8: reused
  EXPECT_EQ(reused, big);
  EXPECT_EQ(a.stats().allocated, 1024u + (size_t(18) << 20));  // the block's own size
  void* four = a.allocate(size_t(4) << 20);
  EXPECT_EQ(dev.mallocs, 4);
  a.release(reused);
  void* two = a.allocate(size_t(2) << 20);  // the 18 MiB block is far too big for 2 MiB
  EXPECT_NE(two, reused);
  EXPECT_EQ(dev.mallocs, 5);
  for (void* p : {other, four, two}) a.release(p);
  a.empty_cache();
  EXPECT_EQ(dev.used, 0u);
}

TEST(CachingAllocator, StatisticsCountWholeBlocks) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  void* p = a.allocate(100);    // 512
  void* q = a.allocate(5000);   // 5120
  EXPECT_EQ(a.stats().allocated, 512u + 5120u);
  EXPECT_EQ(a.stats().peak_allocated, 512u + 5120u);
  EXPECT_EQ(a.stats().reserved, 512u + 5120u);
  a.release(q);
  EXPECT_EQ(a.stats().allocated, 512u);
  EXPECT_EQ(a.stats().peak_allocated, 512u + 5120u);
  EXPECT_EQ(a.stats().reserved, 512u + 5120u);
  EXPECT_EQ(a.cached_bytes(), 5120u);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_allocated, 512u);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved, 512u);
  EXPECT_EQ(dev.frees, 1);
  a.release(p);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved, 0u);
  EXPECT_EQ(dev.used, 0u);
}

TEST(CachingAllocator, OutOfMemoryFreesTheCacheAndRetriesOnce) {
  FakeDevice dev;
  dev.capacity = size_t(8) << 20;
  Allocator a(FakeRaw{&dev});
  void* p = a.allocate(size_t(6) << 20);
  a.release(p);  // 6 MiB cached, 2 MiB left on the device
  void* q = a.allocate(size_t(3) << 20);  // 4 MiB block: refused, cache freed, retried
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(dev.refused, 1);
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.stats().reserved, size_t(4) << 20);
  a.release(q);
  a.empty_cache();
  EXPECT_EQ(dev.used, 0u);
}

TEST(CachingAllocator, OutOfMemoryAfterTheRetryNamesTheSize) {
  FakeDevice dev;
  dev.capacity = size_t(8) << 20;
  Allocator a(FakeRaw{&dev});
  void* p = a.allocate(size_t(5) << 20);
  try {
    a.allocate(size_t(7) << 20);
    FAIL() << "expected MemoryError";
  } catch (const MemoryError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tried to allocate 7340032 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("6291456 bytes are in use"), std::string::npos) << msg;
  }
  // The failure leaves the allocator consistent.
  EXPECT_EQ(a.stats().allocated, size_t(6) << 20);
  a.release(p);
  a.empty_cache();
  EXPECT_EQ(dev.used, 0u);
}

TEST(CachingAllocator, APrivatePoolKeepsItsBlocksFromOtherWork) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  void* cached = a.allocate(1000);
  a.release(cached);                 // cached in the general pool
  void* eager = a.allocate(1000);    // in use by work before the capture
  EXPECT_EQ(eager, cached);
  a.begin_pool(7);
  EXPECT_EQ(a.active_pool(), 7u);
  void* scratch = a.allocate(1000);  // a pool never takes the general pool's blocks
  EXPECT_NE(scratch, eager);
  a.release(eager);                  // dropped during the capture: the general pool's
  a.release(scratch);                // a kernel's scratch: back to pool 7, reused there
  EXPECT_EQ(a.allocate(1000), scratch);
  a.end_pool();
  EXPECT_EQ(a.active_pool(), 0u);
  // After the capture other work never gets the graph's blocks, in use or cached.
  void* eager_again = a.allocate(1000);
  EXPECT_EQ(eager_again, eager);
  a.release(scratch);  // e.g. a graph output dropped while the graph lives
  void* other = a.allocate(1000);
  EXPECT_NE(other, scratch);
  a.release(other);
  a.empty_cache();  // frees the general pool's blocks, never a live pool's
  EXPECT_EQ(dev.frees, 1);
  void* fresh = a.allocate(1000);
  EXPECT_NE(fresh, scratch);
  // The graph is gone: its blocks serve everyone.
  a.release_pool(7);
  void* reused = a.allocate(1000);
  EXPECT_EQ(reused, scratch);
  for (void* p : {eager_again, fresh, reused}) a.release(p);  // nothing left to leak
}

TEST(CachingAllocator, PoolsDoNotNestAndAnActivePoolIsNotReleased) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  EXPECT_THROW(a.begin_pool(0), ValueError);
  a.begin_pool(3);
  EXPECT_THROW(a.begin_pool(4), ValueError);
  EXPECT_THROW(a.release_pool(3), ValueError);
  a.end_pool();
  a.release_pool(3);
  a.release_pool(3);  // twice, or a pool never begun: nothing to do
  a.release_pool(99);
}

TEST(CachingAllocator, APrivatePoolBlockReleasedAfterItsPoolGoesToTheGeneralPool) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  a.begin_pool(5);
  void* p = a.allocate(4096);
  a.end_pool();
  a.release_pool(5);
  a.release(p);
  void* again = a.allocate(4096);
  EXPECT_EQ(again, p);
  a.release(again);
}

TEST(CachingAllocator, OutOfMemoryWhileCapturingKeepsTheCache) {
  FakeDevice dev;
  dev.capacity = size_t(8) << 20;
  Allocator a(FakeRaw{&dev});
  a.release(a.allocate(size_t(6) << 20));  // 6 MiB cached in the general pool
  a.begin_pool(1);
  try {
    a.allocate(size_t(3) << 20);
    FAIL() << "expected MemoryError";
  } catch (const MemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("while capturing a CUDA graph"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(dev.frees, 0);  // freeing would wait for the device, which capture forbids
  a.end_pool();
  void* p = a.allocate(size_t(3) << 20);  // outside: cache freed, retried
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(dev.frees, 1);
  a.release(p);
}

TEST(CachingAllocator, ReleaseOfAForeignPointerIsAnError) {
  FakeDevice dev;
  Allocator a(FakeRaw{&dev});
  int x = 0;
  EXPECT_THROW(a.release(&x), ValueError);
  a.release(nullptr);  // like free(nullptr)
}

}  // namespace
}  // namespace kiln
