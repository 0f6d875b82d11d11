// A fixed set of worker threads running data-parallel loops.
//
// ParallelFor(n, fn) splits [0, n) into at most size() contiguous chunks of
// near-equal length (static chunking: chunk c is [c*n/T, (c+1)*n/T)), runs
// them on the calling thread and the workers, and returns when all are done.
// Workers are created once; a call costs a wake-up and a join, no thread
// creation (a decode step makes ~10 calls per layer). Workers spin briefly
// for the next call before they sleep on a condition variable.
//
// ParallelFor is not reentrant: fn must not call ParallelFor on the same
// pool (it would run inline, see below), and only one thread may call
// ParallelFor at a time (calls from several threads are serialised).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lserve {

class ThreadPool {
 public:
  // threads: total threads including the caller; 0 = hardware concurrency.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Runs fn(begin, end) over a partition of [0, n) into non-empty chunks;
  // nothing when n <= 0. A call from inside fn (nested) runs fn(0, n) inline.
  void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Like ParallelFor but with at most max_chunks chunks (>= 1), for loops
  // whose chunks should not be smaller than some grain.
  void ParallelFor(int64_t n, int64_t max_chunks,
                   const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void WorkerLoop(int worker);
  void RunChunk(int chunk);

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers

  // State of the current call, published by generation_.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // chunks not yet finished by workers
  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
};

}  // namespace lserve
