// One process-wide thread pool. parallel_for splits [begin, end) into chunks of
// at least `grain` iterations; work smaller than one grain runs on the calling
// thread, because waking workers costs more than a tiny op. Nested calls from
// inside a worker run serially (no oversubscription). OpenBLAS runs
// single-threaded; kiln::gemm splits large products over this pool.
//
// parallel_for's chunk boundaries depend on the thread count, so a sum whose
// terms are split across chunks would round differently at each count. A
// reduction therefore uses FixedChunks: boundaries from the problem size alone,
// each chunk's partial result computed in a fixed order, and the partials
// combined in chunk order (OrderedSum, parallel_reduce). Same inputs, same
// bits, at any kiln.set_num_threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace kiln {

void set_num_threads(int n);
int get_num_threads();

// fn(chunk_begin, chunk_end) is called once per chunk, possibly concurrently.
// The first exception thrown by any chunk is rethrown on the calling thread.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// The grain for rows of `row_size` values in a memory-bound loop (a copy, a
// normalization pass): about 16K values a task, so that both threads of a small
// machine share even a tensor of a few MiB, and a task is never a sliver.
inline int64_t rows_per_grain(int64_t row_size) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, row_size));
}

// [0, n) cut into `count` contiguous chunks whose sizes differ by at most one:
// chunk c is [begin(c), begin(c + 1)).
struct FixedChunks {
  int64_t n = 0, count = 0;
  int64_t begin(int64_t c) const { return c * (n / count) + std::min(c, n % count); }
  int64_t end(int64_t c) const { return begin(c + 1); }
};

// ceil(n / grain) chunks, at most max_chunks (and at least one): a function of
// the problem alone, never of the pool.
FixedChunks fixed_chunks(int64_t n, int64_t grain, int64_t max_chunks);

// fn(c, begin, end) once for every chunk c, chunks possibly concurrently and in
// any order.
void parallel_chunks(const FixedChunks& chunks,
                     const std::function<void(int64_t, int64_t, int64_t)>& fn);

// out = part 0 + part 1 + ... + part (parts - 1), added element by element in
// that order, while the parts are still being computed: part c is added as
// soon as it and every part before it are complete, so a part is usually
// added while still in cache, and then freed. tasks[c] is the number of
// finish(c) calls that complete part c. Part 0 is `out` itself. init(buffer)
// prepares a new part (e.g. zeroes it; it runs once per part, part 0 included).
template <typename T>
class OrderedSum {
 public:
  OrderedSum(int64_t size, T* out, std::vector<int64_t> tasks, std::function<void(T*)> init)
      : size_(size), out_(out), pending_(tasks.size()), parts_(tasks.size()),
        made_(tasks.size()), complete_(tasks.size(), false), init_(std::move(init)) {
    for (size_t c = 0; c < tasks.size(); ++c) pending_[c].store(tasks[c]);
  }

  // Part c's buffer of `size` elements (thread-safe; made and init-ed on first use).
  T* part(int64_t c) {
    std::call_once(made_[c], [&] {
      if (c > 0) parts_[c].reset(new T[static_cast<size_t>(size_)]);
      init_(c > 0 ? parts_[c].get() : out_);
    });
    return c > 0 ? parts_[c].get() : out_;
  }

  // One of part c's tasks is done; the last one adds every complete part that
  // is next in order.
  void finish(int64_t c) {
    if (pending_[c].fetch_sub(1) != 1) return;
    std::lock_guard<std::mutex> lock(mutex_);
    complete_[c] = true;
    for (; next_ < static_cast<int64_t>(complete_.size()) && complete_[next_]; ++next_) {
      const T* p = parts_[next_].get();
      if (next_ == 0 || p == nullptr) continue;  // part 0 is out; an unused part adds 0
      for (int64_t e = 0; e < size_; ++e) out_[e] += p[e];
      parts_[next_].reset();
    }
  }

 private:
  int64_t size_;
  T* out_;
  std::vector<std::atomic<int64_t>> pending_;
  std::vector<std::unique_ptr<T[]>> parts_;
  std::vector<std::once_flag> made_;
  std::vector<bool> complete_;  // guarded by mutex_
  std::function<void(T*)> init_;
  std::mutex mutex_;
  int64_t next_ = 0;  // the first part not yet added; guarded by mutex_
};

// A sum over [0, n) of `size`-element terms: fn(begin, end, part) adds the terms
// of [begin, end) into part (zeroed, `size` elements), one part per chunk of
// fixed_chunks(n, grain, max_chunks); out = the parts added in chunk order.
// max_chunks bounds the parallelism (and the parts alive at once).
template <typename T, typename F>
void parallel_reduce(int64_t n, int64_t grain, int64_t max_chunks, int64_t size, T* out,
                     F&& fn) {
  if (n == 0) {
    std::fill(out, out + size, T(0));
    return;
  }
  const FixedChunks chunks = fixed_chunks(n, grain, max_chunks);
  OrderedSum<T> sum(size, out, std::vector<int64_t>(static_cast<size_t>(chunks.count), 1),
                    [size](T* part) { std::fill(part, part + size, T(0)); });
  parallel_chunks(chunks, [&](int64_t c, int64_t b, int64_t e) {
    fn(b, e, sum.part(c));
    sum.finish(c);
  });
}

}  // namespace kiln
