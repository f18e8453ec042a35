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
// combined in chunk order (parallel_reduce). Same inputs, same bits, at any
// kiln.set_num_threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace kiln {

void set_num_threads(int n);
int get_num_threads();
// True while the calling thread executes a parallel_for chunk.
bool in_parallel_region();

// fn(chunk_begin, chunk_end) is called once per chunk, possibly concurrently.
// The first exception thrown by any chunk is rethrown on the calling thread.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

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

// out[e] = parts[0][e] + parts[1][e] + ..., added in that order, for e < size;
// threaded over e (each element's order stays fixed).
template <typename T>
void sum_in_order(const std::vector<const T*>& parts, int64_t size, T* out) {
  parallel_for(0, size, int64_t{1} << 14, [&](int64_t e0, int64_t e1) {
    if (parts.empty()) {
      std::fill(out + e0, out + e1, T(0));
      return;
    }
    std::copy(parts[0] + e0, parts[0] + e1, out + e0);
    for (size_t p = 1; p < parts.size(); ++p)
      for (int64_t e = e0; e < e1; ++e) out[e] += parts[p][e];
  });
}

// A sum over [0, n) of `size`-element terms: fn(begin, end, part) adds the terms
// of [begin, end) into part (zeroed, `size` elements), one part per chunk of
// fixed_chunks(n, grain, max_chunks); out = the parts added in chunk order.
// max_chunks bounds the memory (max_chunks * size elements) and the parallelism.
template <typename T, typename F>
void parallel_reduce(int64_t n, int64_t grain, int64_t max_chunks, int64_t size, T* out,
                     F&& fn) {
  const FixedChunks chunks = fixed_chunks(n, grain, max_chunks);
  std::vector<std::vector<T>> parts(static_cast<size_t>(n > 0 ? chunks.count : 0));
  parallel_chunks(chunks, [&](int64_t c, int64_t b, int64_t e) {
    parts[c].assign(static_cast<size_t>(size), T(0));
    fn(b, e, parts[c].data());
  });
  std::vector<const T*> pointers;
  for (const auto& p : parts) pointers.push_back(p.data());
  sum_in_order(pointers, size, out);
}

}  // namespace kiln
