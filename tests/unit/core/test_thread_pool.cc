#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace lserve {
namespace {

// Every index in [0, n) is visited exactly once, by chunks that tile the range.
void ExpectExactCover(ThreadPool& pool, int64_t n, int64_t max_chunks) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.ParallelFor(n, max_chunks, [&](int64_t begin, int64_t end) {
    ASSERT_LT(begin, end);
    for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace_back(begin, end);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
  EXPECT_LE(static_cast<int64_t>(chunks.size()), std::min<int64_t>({static_cast<int64_t>(pool.size()), std::max<int64_t>(n, 0), max_chunks}));
}

TEST(ThreadPool, SizeDefaultsToHardware) {
  ThreadPool pool(0);
  EXPECT_GE(pool.size(), 1);
  ThreadPool three(3);
  EXPECT_EQ(three.size(), 3);
}

TEST(ThreadPool, CoversRangesExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 4, 5, 17, 97, 1000}) {
      ExpectExactCover(pool, n, threads);
      ExpectExactCover(pool, n, 1);
      ExpectExactCover(pool, n, 2);
    }
  }
}

TEST(ThreadPool, StaticChunksAreNearEqual) {
  ThreadPool pool(4);
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> chunks;
  pool.ParallelFor(10, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace(b, e);
  });
  // chunk c = [c*n/T, (c+1)*n/T)
  const std::set<std::pair<int64_t, int64_t>> expected = {{0, 2}, {2, 5}, {5, 7}, {7, 10}};
  EXPECT_EQ(chunks, expected);
}

TEST(ThreadPool, UsesSeveralThreads) {
  ThreadPool pool(2);
  std::mutex mu;
  std::set<std::thread::id> ids;
  // Each chunk waits for the other so both must run at the same time.
  std::atomic<int> arrived{0};
  pool.ParallelFor(2, [&](int64_t, int64_t) {
    arrived.fetch_add(1);
    while (arrived.load() < 2) std::this_thread::yield();
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ThreadPool, ManyBackToBackCallsSumCorrectly) {
  ThreadPool pool(3);
  std::mt19937 rng(std::random_device{}());
  for (int call = 0; call < 1000; ++call) {
    const int64_t n = std::uniform_int_distribution<int64_t>(0, 50)(rng);
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(n, [&](int64_t b, int64_t e) {
      int64_t local = 0;
      for (int64_t i = b; i < e; ++i) local += i;
      sum.fetch_add(local);
    });
    ASSERT_EQ(sum.load(), n * (n - 1) / 2);
  }
}

TEST(ThreadPool, CallsAfterIdleSleepStillWork) {
  ThreadPool pool(2);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers go to sleep
    std::atomic<int64_t> count{0};
    pool.ParallelFor(100, [&](int64_t b, int64_t e) { count.fetch_add(e - b); });
    EXPECT_EQ(count.load(), 100);
  }
}

TEST(ThreadPool, NestedCallRunsInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> count{0};
  pool.ParallelFor(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.ParallelFor(10, [&](int64_t b2, int64_t e2) { count.fetch_add(e2 - b2); });
    }
  });
  EXPECT_EQ(count.load(), 40);
}

TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int i = 0; i < 500; ++i) {
      pool.ParallelFor(8, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 500 * 8);
}

}  // namespace
}  // namespace lserve
