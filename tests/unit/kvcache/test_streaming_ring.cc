#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kvcache/streaming_ring.h"

namespace lserve {
namespace {

TEST(StreamingRing, SlotFormula) {
  const StreamingRing ring(2, 5);
  const std::vector<int64_t> want = {0, 1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 2};
  for (int64_t b = 0; b < static_cast<int64_t>(want.size()); ++b) EXPECT_EQ(ring.SlotOf(b), want[b]) << b;
  const StreamingRing no_sink(0, 3);
  EXPECT_EQ(no_sink.SlotOf(0), 0);
  EXPECT_EQ(no_sink.SlotOf(4), 1);
}

// The worked example of streaming_ring.h.
TEST(StreamingRing, WorkedExample) {
  PageAllocator pool(100);
  StreamingRing ring(2, 5);
  EXPECT_EQ(ring.PagesToCover(15), 7);
  ring.Cover(15, pool);
  EXPECT_EQ(pool.used_pages(), 7);
  EXPECT_EQ(ring.oldest_ring_page(), 11);
  for (int64_t b = 0; b <= 15; ++b) EXPECT_EQ(ring.Holds(b), b < 2 || b >= 11) << b;
  EXPECT_FALSE(ring.Holds(16));
  EXPECT_EQ(ring.PageFor(10), -1);
  // slots 2..6 hold logical pages 12 13 14 15 11
  EXPECT_EQ(ring.slots()[2], ring.PageFor(12));
  EXPECT_EQ(ring.slots()[5], ring.PageFor(15));
  EXPECT_EQ(ring.slots()[6], ring.PageFor(11));
  // page 16 reuses page 11's slot: no new page
  const int32_t page_of_11 = ring.PageFor(11);
  EXPECT_EQ(ring.PagesToCover(16), 0);
  ring.Cover(16, pool);
  EXPECT_EQ(ring.PageFor(16), page_of_11);
  EXPECT_FALSE(ring.Holds(11));
  ring.Release(pool);
  EXPECT_EQ(pool.used_pages(), 0);
  EXPECT_EQ(ring.pages_held(), 0);
}

// Rotation regression (LSERVE.md §3.3 [HAZARD]): the page that a logical page
// was written to is the page it is read from for as long as it is held, however
// the ring rotates between steps. Random step sizes, including steps longer
// than the ring.
TEST(StreamingRing, LogicalPageKeepsItsPageWhileHeld) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 20; ++round) {
    const int64_t S = std::uniform_int_distribution<int64_t>(0, 3)(rng);
    const int64_t W = std::uniform_int_distribution<int64_t>(1, 7)(rng);
    PageAllocator pool(static_cast<int32_t>(S + W));
    StreamingRing ring(S, W);
    std::map<int64_t, int32_t> written;  // logical page -> page when first held
    int64_t last = -1;
    while (last < 200) {
      const int64_t step = std::uniform_int_distribution<int64_t>(1, 2 * W + 2)(rng);
      const int64_t taken = ring.PagesToCover(last + step);
      const int32_t used_before = pool.used_pages();
      ring.Cover(last + step, pool);
      ASSERT_EQ(pool.used_pages() - used_before, taken);
      ASSERT_LE(pool.used_pages(), S + W);
      last += step;
      for (int64_t b = 0; b <= last; ++b) {
        const bool held = b < S || b > last - W;
        ASSERT_EQ(ring.Holds(b), held) << "S " << S << " W " << W << " last " << last << " b " << b;
        if (!held) {
          written.erase(b);
          continue;
        }
        const int32_t page = ring.PageFor(b);
        ASSERT_GE(page, 0);
        auto [it, fresh] = written.emplace(b, page);
        ASSERT_EQ(it->second, page) << "logical page " << b << " moved at last " << last;
      }
      // Held pages sit in distinct slots.
      std::set<int32_t> pages;
      for (const auto& [b, page] : written) ASSERT_TRUE(pages.insert(page).second);
    }
    ring.Release(pool);
    ASSERT_TRUE(pool.CheckInvariant().ok());
    ASSERT_EQ(pool.free_pages(), S + W);
  }
}

TEST(StreamingRing, ALongJumpTakesAtMostTheRing) {
  PageAllocator pool(64);
  StreamingRing ring(3, 4);
  EXPECT_EQ(ring.PagesToCover(0), 1);
  EXPECT_EQ(ring.PagesToCover(2), 3);
  EXPECT_EQ(ring.PagesToCover(1000), 7);
  ring.Cover(1000, pool);
  EXPECT_EQ(ring.pages_held(), 7);
  for (int64_t b = 0; b <= 1000; ++b) EXPECT_EQ(ring.Holds(b), b < 3 || b >= 997) << b;
}

// Shrink re-slots the kept pages under the new width without moving data.
TEST(StreamingRing, ShrinkKeepsPagesAndFollowsTheFormula) {
  for (int64_t last = 0; last < 40; ++last) {
    for (int64_t keep_count = 1; keep_count <= 3; ++keep_count) {
      PageAllocator pool(64);
      StreamingRing ring(2, 9);
      ring.Cover(last, pool);
      std::map<int64_t, int32_t> before;
      for (int64_t b = 0; b <= last; ++b) before[b] = ring.PageFor(b);
      const int64_t keep_from = std::max<int64_t>(last - keep_count + 1, std::max<int64_t>(2, last - 8));
      const int64_t held_before = ring.pages_held();
      ring.Shrink(4, keep_from, pool);
      EXPECT_EQ(ring.ring_pages(), 4);
      EXPECT_EQ(ring.slots().size(), 6u);
      int64_t held_after = 0;
      for (int64_t b = 0; b <= last; ++b) {
        const bool kept = b < 2 || b >= keep_from;
        ASSERT_EQ(ring.Holds(b), kept) << last << " " << b;
        if (!kept) continue;
        ++held_after;
        EXPECT_EQ(ring.PageFor(b), before[b]) << "page moved, last " << last << " b " << b;
        EXPECT_EQ(ring.slots()[static_cast<size_t>(b < 2 ? b : 2 + (b - 2) % 4)], before[b]);
      }
      EXPECT_EQ(ring.pages_held(), held_after);
      EXPECT_EQ(pool.used_pages(), held_after);
      EXPECT_LE(held_after, held_before);
      // Growing on reuses the narrowed ring.
      ring.Cover(last + 10, pool);
      EXPECT_LE(ring.pages_held(), 6);
      for (int64_t b = last + 7; b <= last + 10; ++b) EXPECT_TRUE(ring.Holds(b));
      ring.Release(pool);
      ASSERT_EQ(pool.free_pages(), 64);
      ASSERT_TRUE(pool.CheckInvariant().ok());
    }
  }
}

}  // namespace
}  // namespace lserve
