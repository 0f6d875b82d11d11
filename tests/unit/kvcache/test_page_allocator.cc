#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "kvcache/page_allocator.h"

namespace lserve {
namespace {

TEST(PageAllocator, HandsOutEveryPageOnceThenRefuses) {
  PageAllocator pool(37);
  std::set<int32_t> seen;
  for (int i = 0; i < 37; ++i) {
    Result<int32_t> page = pool.Allocate();
    ASSERT_TRUE(page.ok()) << i;
    EXPECT_TRUE(pool.valid(*page));
    EXPECT_TRUE(seen.insert(*page).second) << "page " << *page << " handed out twice";
    EXPECT_EQ(pool.ref_count(*page), 1);
    EXPECT_EQ(pool.free_pages() + pool.used_pages(), 37);
  }
  Result<int32_t> none = pool.Allocate();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.used_pages(), 37);
  EXPECT_TRUE(pool.CheckInvariant().ok());
}

TEST(PageAllocator, EmptyPoolIsValidAndRefusesAllocation) {
  PageAllocator pool(0);
  EXPECT_TRUE(pool.CheckInvariant().ok());
  EXPECT_EQ(pool.Allocate().status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(pool.valid(0));
}

TEST(PageAllocator, PageIsFreeOnlyAfterItsLastHolderLeaves) {
  PageAllocator pool(4);
  const int32_t page = *pool.Allocate();
  ASSERT_TRUE(pool.Ref(page).ok());
  ASSERT_TRUE(pool.Ref(page).ok());
  EXPECT_EQ(pool.ref_count(page), 3);
  EXPECT_EQ(pool.used_pages(), 1);
  ASSERT_TRUE(pool.Unref(page).ok());
  ASSERT_TRUE(pool.Unref(page).ok());
  EXPECT_FALSE(pool.is_free(page));
  EXPECT_EQ(pool.free_pages(), 3);
  ASSERT_TRUE(pool.Unref(page).ok());
  EXPECT_TRUE(pool.is_free(page));
  EXPECT_EQ(pool.free_pages(), 4);
  EXPECT_TRUE(pool.CheckInvariant().ok());
  // The page just returned is the next one handed out.
  EXPECT_EQ(*pool.Allocate(), page);
}

TEST(PageAllocator, PreconditionViolationsAreErrorsAndChangeNothing) {
  PageAllocator pool(3);
  const int32_t page = *pool.Allocate();
  ASSERT_TRUE(pool.Unref(page).ok());
  EXPECT_EQ(pool.Unref(page).code(), StatusCode::kInvalidArgument);  // double free
  EXPECT_EQ(pool.Ref(page).code(), StatusCode::kInvalidArgument);    // ref of a free page
  EXPECT_EQ(pool.Ref(-1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Unref(3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.free_pages(), 3);
  EXPECT_TRUE(pool.CheckInvariant().ok());
  // The double free did not put the page on the free list twice.
  std::set<int32_t> pages;
  for (int i = 0; i < 3; ++i) pages.insert(*pool.Allocate());
  EXPECT_EQ(pages.size(), 3u);
}

// Random Allocate / Ref / Unref against a shadow map of reference counts.
TEST(PageAllocator, RandomWorkloadKeepsInvariantAndMatchesShadowCounts) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 4; ++round) {
    const int32_t total = std::uniform_int_distribution<int32_t>(1, 64)(rng);
    PageAllocator pool(total);
    std::vector<int32_t> shadow(static_cast<size_t>(total), 0);
    std::vector<int32_t> held;  // one entry per holder
    for (int op = 0; op < 3000; ++op) {
      const int kind = std::uniform_int_distribution<int>(0, 2)(rng);
      if (kind == 0) {
        Result<int32_t> page = pool.Allocate();
        const bool any_free = std::count(shadow.begin(), shadow.end(), 0) > 0;
        ASSERT_EQ(page.ok(), any_free);
        if (page.ok()) {
          ASSERT_EQ(shadow[static_cast<size_t>(*page)], 0) << "handed out a used page";
          shadow[static_cast<size_t>(*page)] = 1;
          held.push_back(*page);
        }
      } else if (!held.empty()) {
        const size_t i = std::uniform_int_distribution<size_t>(0, held.size() - 1)(rng);
        const int32_t page = held[i];
        if (kind == 1) {
          ASSERT_TRUE(pool.Ref(page).ok());
          ++shadow[static_cast<size_t>(page)];
          held.push_back(page);
        } else {
          ASSERT_TRUE(pool.Unref(page).ok());
          --shadow[static_cast<size_t>(page)];
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
      ASSERT_TRUE(pool.CheckInvariant().ok()) << pool.CheckInvariant().ToString();
      const int32_t used = static_cast<int32_t>(std::count_if(shadow.begin(), shadow.end(), [](int32_t c) { return c > 0; }));
      ASSERT_EQ(pool.used_pages(), used);
      ASSERT_EQ(pool.free_pages(), total - used);
    }
    for (int32_t p = 0; p < total; ++p) EXPECT_EQ(pool.ref_count(p), shadow[static_cast<size_t>(p)]);
    for (const int32_t page : held) ASSERT_TRUE(pool.Unref(page).ok());
    EXPECT_EQ(pool.free_pages(), total);
    EXPECT_TRUE(pool.CheckInvariant().ok());
  }
}

}  // namespace
}  // namespace lserve
