#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LSERVE_CPU_RELAX() _mm_pause()
#else
#define LSERVE_CPU_RELAX() std::this_thread::yield()
#endif

namespace lserve {
namespace {

// How long a waiting thread spins before it sleeps: longer than the gap
// between the ParallelFor calls of one decode step (a few microseconds of
// serial work), far shorter than the gap between steps. Spinning longer
// only burns a core that another thread of the process may need.
constexpr auto kSpinTime = std::chrono::microseconds(50);

// Spins until ready() or kSpinTime has passed; true when ready.
template <typename Ready>
bool SpinUntil(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      LSERVE_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

// The pool whose chunk this thread is running (nested calls run inline).
thread_local const ThreadPool* tls_running_pool = nullptr;

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  size_ = std::max(1, threads);
  workers_.reserve(size_ - 1);
  for (int w = 1; w < size_; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_.store(true, std::memory_order_release);
    // A new generation wakes spinning workers too.
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunk(int chunk) {
  const int64_t begin = n_ * chunk / chunks_;
  const int64_t end = n_ * (chunk + 1) / chunks_;
  if (begin < end) (*fn_)(begin, end);
}

void ThreadPool::WorkerLoop(int worker) {
  tls_running_pool = this;
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = seen;
    SpinUntil([&] { return (gen = generation_.load(std::memory_order_acquire)) != seen; });
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    // Every worker takes part in every call (chunk `worker` may be empty), so
    // the caller's wait on pending_ also covers this worker's reads of the
    // call state: nothing is overwritten while a worker still reads it.
    if (worker < chunks_) RunChunk(worker);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  ParallelFor(n, size_, fn);
}

void ThreadPool::ParallelFor(int64_t n, int64_t max_chunks,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t chunks = std::min<int64_t>({static_cast<int64_t>(size_), n, std::max<int64_t>(1, max_chunks)});
  if (chunks == 1 || tls_running_pool == this) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  fn_ = &fn;
  n_ = n;
  chunks_ = static_cast<int>(chunks);
  pending_.store(size_ - 1, std::memory_order_relaxed);
  {
    // Taking wake_mu_ orders the publication against a worker that has just
    // checked the generation and is about to sleep (no lost wake-up).
    std::lock_guard<std::mutex> lock(wake_mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_cv_.notify_all();

  tls_running_pool = this;
  RunChunk(0);
  tls_running_pool = nullptr;

  if (SpinUntil([&] { return pending_.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
}

}  // namespace lserve
