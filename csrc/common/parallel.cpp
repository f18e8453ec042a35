#include "common/parallel.h"

#include <immintrin.h>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "common/check.h"

namespace kiln {
namespace {

thread_local bool t_in_parallel = false;

// A worker that finished a job spins this long before it sleeps: the next op
// of a network usually follows within microseconds, and a futex wake-up costs
// tens of them (OpenMP runtimes spin for the same reason).
constexpr auto kSpin = std::chrono::microseconds(200);

// The CPUs this process may run on (Linux; empty elsewhere).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
#endif
  return cpus;
}

// A fixed set of workers that sleep on a condition variable; each job is a
// range of chunk indices handed out through an atomic counter.
//
// Where the pool has one thread per allowed CPU (the default), each worker is
// pinned to a CPU other than the one the calling thread is on, re-pinned only
// when the caller is found on another CPU (sched_getcpu, no system call). Left
// to the scheduler, a worker woken by the caller was often placed on the
// caller's own CPU and stayed there for milliseconds: on a 2-CPU machine, a
// 3x3 convolution (128,64,8,8)->64 took 6.2 ms at 2 threads (its 1-thread
// time) in about half the calls after an idle pause instead of 3.1 ms, and
// pinned it took 3.1-3.4 ms. KILN_PIN_THREADS=0 leaves placement to the system.
//
// The counter carries the job's number in its high 32 bits and the next chunk
// in its low 32; a chunk is claimed by compare-and-swap, only while the number
// is that of the job the claimer works for, and a new job first replaces the
// counter, then sets its size. So a worker late from the previous job (it read
// the exhausted counter, then the new job's larger size) fails its swap instead
// of claiming a phantom chunk: with a plain fetch_add on a bare index it ran
// one chunk of the new job twice and counted one chunk too many, and the
// caller waited forever for a count it had overshot (seen as kiln train hanging
// in batch_norm_backward after some thousands of steps).
class ThreadPool {
 public:
  explicit ThreadPool(int workers) { resize(workers); }
  ~ThreadPool() { stop_all(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    stop_all();
    stopping_ = false;
    for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { work(); });
    cpus_ = allowed_cpus();
    const char* pin = std::getenv("KILN_PIN_THREADS");
    pin_ = threads > 1 && static_cast<int>(cpus_.size()) == threads &&
           !(pin != nullptr && std::strcmp(pin, "0") == 0);
    caller_cpu_ = -1;
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& body) {
    KILN_CHECK(chunks >= 0 && chunks < (int64_t(1) << 32), "parallel_for: ", chunks,
               " chunks is more than a job can hold");
    std::unique_lock<std::mutex> job_lock(job_mutex_);  // one job at a time
    uint32_t job;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      // Workers learn the new number only after this block (generation_ is read
      // under mutex_), so no one claims from the counter before the size is set.
      job = static_cast<uint32_t>(generation_.fetch_add(1) + 1);
      next_.store(uint64_t(job) << 32);  // first: every claim on the old job fails now
      body_ = &body;
      chunks_.store(chunks);
      done_.store(0);
      error_ = nullptr;
    }
    place_workers();
    cv_.notify_all();
    drain(job);
    std::unique_lock<std::mutex> lk(mutex_);
    done_cv_.wait(lk, [&] { return done_.load() == chunks_.load(); });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Pins the workers to the allowed CPUs after the caller's (see the class comment).
  void place_workers() {
#ifdef __linux__
    if (!pin_) return;
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == caller_cpu_) return;
    caller_cpu_ = cpu;
    const auto at = std::find(cpus_.begin(), cpus_.end(), cpu) - cpus_.begin();
    for (size_t i = 0; i < workers_.size(); ++i) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpus_[(static_cast<size_t>(at) + 1 + i) % cpus_.size()], &set);
      pthread_setaffinity_np(workers_[i].native_handle(), sizeof(set), &set);
    }
#endif
  }

  void stop_all() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      const auto deadline = std::chrono::steady_clock::now() + kSpin;
      for (int i = 1; generation_.load() == seen && !stopping_.load(); ++i) {
        _mm_pause();
        if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) break;
      }
      {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return stopping_.load() || generation_.load() != seen; });
        if (stopping_) return;
        seen = generation_.load();
      }
      drain(static_cast<uint32_t>(seen));
    }
  }

  // The next chunk of job `job`, or -1 once it has none left (or is over).
  int64_t claim(uint32_t job) {
    uint64_t current = next_.load();
    for (;;) {
      if (static_cast<uint32_t>(current >> 32) != job) return -1;
      const int64_t index = static_cast<int64_t>(current & 0xFFFFFFFFu);
      if (index >= chunks_.load()) return -1;
      if (next_.compare_exchange_weak(current, current + 1)) return index;
    }
  }

  // Claims chunks of `job` until none are left; used by workers and the caller alike.
  void drain(uint32_t job) {
    t_in_parallel = true;
    for (int64_t i; (i = claim(job)) >= 0;) {
      try {
        (*body_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == chunks_.load()) {
        std::lock_guard<std::mutex> lk(mutex_);  // the caller checks done_ under it
        done_cv_.notify_all();
      }
    }
    t_in_parallel = false;
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* body_ = nullptr;
  std::atomic<uint64_t> next_{0};  // job number << 32 | next chunk
  std::atomic<int64_t> chunks_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;
  std::vector<int> cpus_;  // allowed_cpus() when the workers were made
  bool pin_ = false;
  int caller_cpu_ = -1;  // the caller's CPU when the workers were last placed
};

int default_threads() {
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}

}  // namespace

void set_num_threads(int n) {
  KILN_CHECK(n >= 1, "set_num_threads: expected a positive thread count, got ", n);
  pool().resize(n);
}

int get_num_threads() { return pool().size(); }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  const int64_t n = end - begin;
  grain = std::max<int64_t>(grain, 1);
  const int threads = get_num_threads();
  if (threads == 1 || n <= grain || t_in_parallel) {
    fn(begin, end);
    return;
  }
  // A few chunks per thread, claimed dynamically, so one descheduled thread
  // does not hold up the whole op.
  constexpr int64_t kChunksPerThread = 4;
  const int64_t chunks = std::min<int64_t>(kChunksPerThread * threads, (n + grain - 1) / grain);
  const int64_t step = (n + chunks - 1) / chunks;
  pool().run(chunks, [&](int64_t c) {
    const int64_t b = begin + c * step;
    const int64_t e = std::min(end, b + step);
    if (b < e) fn(b, e);
  });
}

FixedChunks fixed_chunks(int64_t n, int64_t grain, int64_t max_chunks) {
  KILN_CHECK(n >= 0, "fixed_chunks: negative size ", n);
  grain = std::max<int64_t>(grain, 1);
  const int64_t count =
      std::clamp<int64_t>((n + grain - 1) / grain, 1, std::max<int64_t>(max_chunks, 1));
  return {n, count};
}

void parallel_chunks(const FixedChunks& chunks,
                     const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  if (chunks.n == 0) return;
  parallel_for(0, chunks.count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) fn(c, chunks.begin(c), chunks.end(c));
  });
}

}  // namespace kiln
