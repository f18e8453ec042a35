// One process-wide thread pool. parallel_for splits [begin, end) into chunks of
// at least `grain` iterations; work smaller than one grain runs on the calling
// thread, because waking workers costs more than a tiny op. Nested calls from
// inside a worker run serially (no oversubscription). The BLAS library's thread
// count follows set_num_threads.
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

void set_num_threads(int n);
int get_num_threads();
// True while the calling thread executes a parallel_for chunk.
bool in_parallel_region();

// fn(chunk_begin, chunk_end) is called once per chunk, possibly concurrently.
// The first exception thrown by any chunk is rethrown on the calling thread.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace kiln
