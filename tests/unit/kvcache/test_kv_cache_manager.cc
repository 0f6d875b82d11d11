#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kv_test_util.h"
#include "kvcache/kv_cache.h"

namespace lserve {
namespace {

using kvtest::Consistent;
using kvtest::MakeManager;
using kvtest::TestConfig;
using kvtest::Windows;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

TEST(KvCacheManager, CreateValidatesTheConfig) {
  KvCacheConfig bad = TestConfig(64, 4, 0, false);
  bad.page_size = 100;
  EXPECT_EQ(KvCacheManager::Create(bad).status().code(), StatusCode::kInvalidArgument);
}

// Token by token across page boundaries: one new page exactly when a token
// starts a page, earlier entries never change, and every token's slot is
// (table[pos / P], pos % P).
TEST(KvCacheManager, GrowsOnePagePerPageSizeTokensForEveryPageSize) {
  for (const int64_t P : {16, 32, 64, 128}) {
    SCOPED_TRACE("P " + std::to_string(P));
    const int64_t max_len = 3 * P + 5;
    KvCacheManager kv = MakeManager(TestConfig(P, CeilDiv(max_len, P), 0, false));
    ASSERT_TRUE(kv.AddSequence(7).ok());
    std::vector<int32_t> table_before;
    for (int64_t len = 1; len <= max_len; ++len) {
      ASSERT_EQ(kv.PagesToGrow(7, len)->retrieval, (len - 1) % P == 0 ? 1 : 0) << len;
      ASSERT_TRUE(kv.Grow(7, len).ok()) << len;
      const std::span<const int32_t> table = kv.RetrievalPageTable(7);
      ASSERT_EQ(static_cast<int64_t>(table.size()), CeilDiv(len, P)) << len;
      ASSERT_TRUE(std::equal(table_before.begin(), table_before.end(), table.begin())) << "table changed at " << len;
      table_before.assign(table.begin(), table.end());
      const KvSlot newest = kv.SlotFor(7, KvPool::kRetrieval, len - 1);
      ASSERT_EQ(newest, (KvSlot{table.back(), static_cast<int32_t>((len - 1) % P)}));
      ASSERT_EQ(kv.length(7), len);
      ASSERT_TRUE(Consistent(kv, {7}));
    }
    for (int64_t pos = 0; pos < max_len; ++pos) {
      EXPECT_EQ(kv.SlotFor(7, KvPool::kRetrieval, pos),
                (KvSlot{table_before[static_cast<size_t>(pos / P)], static_cast<int32_t>(pos % P)}));
    }
    // The pool is exactly full: one more token past the last page does not fit.
    EXPECT_EQ(kv.CanGrow(7, max_len + 1), (max_len % P) != 0);
  }
}

// LSERVE.md §10 item 4 (partial last page) and issue 4's "pages past a
// sequence's end": the table ends with the page holding the last token, and
// no token at or past the length has a slot, though the page has room.
TEST(KvCacheManager, PartialLastPageHasNoSlotPastTheEnd) {
  const int64_t P = 16;
  KvCacheManager kv = MakeManager(TestConfig(P, 8, 0, false));
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.Grow(1, 2 * P + 5).ok());
  ASSERT_EQ(kv.RetrievalPageTable(1).size(), 3u);
  EXPECT_EQ(kv.SlotFor(1, KvPool::kRetrieval, 2 * P + 4), (KvSlot{kv.RetrievalPageTable(1)[2], 4}));
  EXPECT_FALSE(kv.SlotFor(1, KvPool::kRetrieval, 2 * P + 5).stored());
  EXPECT_FALSE(kv.SlotFor(1, KvPool::kRetrieval, 3 * P).stored());
  EXPECT_FALSE(kv.SlotFor(1, KvPool::kRetrieval, -1).stored());
  // An exact multiple of P: no empty page is added for the next token.
  ASSERT_TRUE(kv.AddSequence(2).ok());
  ASSERT_TRUE(kv.Grow(2, 2 * P).ok());
  EXPECT_EQ(kv.RetrievalPageTable(2).size(), 2u);
  EXPECT_FALSE(kv.SlotFor(2, KvPool::kRetrieval, 2 * P).stored());
  // Growing to the same length is a no-op.
  ASSERT_TRUE(kv.Grow(2, 2 * P).ok());
  EXPECT_EQ(kv.RetrievalPageTable(2).size(), 2u);
}

TEST(KvCacheManager, ErrorsAreValues) {
  KvCacheManager kv = MakeManager(TestConfig(16, 4, 0, false));
  ASSERT_TRUE(kv.AddSequence(1).ok());
  EXPECT_EQ(kv.AddSequence(1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(kv.Grow(2, 5).code(), StatusCode::kNotFound);
  EXPECT_EQ(kv.PagesToGrow(2, 5).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(kv.CanGrow(2, 5));
  EXPECT_EQ(kv.BeginDecode(2).code(), StatusCode::kNotFound);
  EXPECT_EQ(kv.Free(2).code(), StatusCode::kNotFound);
  ASSERT_TRUE(kv.Grow(1, 20).ok());
  EXPECT_EQ(kv.Grow(1, 19).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(kv.CanGrow(1, 19));
  EXPECT_EQ(kv.Grow(1, KvCacheManager::kMaxSequenceTokens + 1).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(kv.CheckCanEverFit(-1).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(kv.Free(1).ok());
  EXPECT_FALSE(kv.Contains(1));
  EXPECT_EQ(kv.Free(1).code(), StatusCode::kNotFound);
  EXPECT_TRUE(Consistent(kv, {}));
}

TEST(KvCacheManager, DenseModelUsesNoStreamingPages) {
  KvCacheManager kv = MakeManager(TestConfig(64, 200, 0, false));
  ASSERT_TRUE(kv.AddSequence(3).ok());
  EXPECT_EQ(kv.PagesNeeded(10000), (PageCounts{157, 0}));
  ASSERT_TRUE(kv.Grow(3, 10000).ok());
  ASSERT_TRUE(kv.BeginDecode(3).ok());
  ASSERT_TRUE(kv.Grow(3, 10001).ok());
  EXPECT_EQ(kv.PagesHeld(3), (PageCounts{157, 0}));
  EXPECT_TRUE(kv.StreamingRingTable(3).empty());
  EXPECT_EQ(kv.StreamingRingPages(3), 0);
  EXPECT_EQ(kv.StreamingPageFor(3, 0), -1);
  EXPECT_FALSE(kv.SlotFor(3, KvPool::kStreaming, 0).stored());
  EXPECT_TRUE(kv.decoding(3));
  EXPECT_TRUE(Consistent(kv, {3}));
}

TEST(KvCacheManager, AdmissionRefusesWhatCanNeverFit) {
  {
    KvCacheManager kv = MakeManager(TestConfig(16, 10, 0, false));
    EXPECT_EQ(kv.PagesNeeded(0), (PageCounts{0, 0}));
    EXPECT_EQ(kv.PagesNeeded(1), (PageCounts{1, 0}));
    EXPECT_EQ(kv.PagesNeeded(16), (PageCounts{1, 0}));
    EXPECT_EQ(kv.PagesNeeded(17), (PageCounts{2, 0}));
    EXPECT_EQ(kv.PagesNeeded(-5), (PageCounts{0, 0}));  // clamped, never a crash
    EXPECT_GT(kv.PagesNeeded(std::numeric_limits<int64_t>::max()).retrieval, 10);
    EXPECT_EQ(kv.CheckCanEverFit(std::numeric_limits<int64_t>::max()).code(), StatusCode::kOutOfRange);
    EXPECT_TRUE(kv.CheckCanEverFit(160).ok());
    const Status too_long = kv.CheckCanEverFit(161);
    EXPECT_EQ(too_long.code(), StatusCode::kResourceExhausted);
    EXPECT_NE(too_long.message().find("retrieval"), std::string::npos) << too_long.message();
  }
  {
    // Streaming ring: S = 2, W = ceil(64 / 16) + 1 = 5 while prefilling.
    const Windows w{.prefill_sink = 32, .prefill_local = 64, .decode_sink = 32, .decode_local = 32};
    KvCacheManager kv = MakeManager(TestConfig(16, 1000, 6, true, w));
    EXPECT_EQ(kv.PagesNeeded(48), (PageCounts{3, 3}));
    EXPECT_EQ(kv.PagesNeeded(96), (PageCounts{6, 6}));
    EXPECT_EQ(kv.PagesNeeded(10000), (PageCounts{625, 7}));  // the ring caps it
    EXPECT_TRUE(kv.CheckCanEverFit(96).ok());
    const Status refused = kv.CheckCanEverFit(97);  // needs 7 streaming pages, the pool has 6
    EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
    EXPECT_NE(refused.message().find("streaming"), std::string::npos) << refused.message();
  }
  {
    // Every head streams: any length fits in a pool of S + W pages.
    const Windows w{.prefill_sink = 32, .prefill_local = 64, .decode_sink = 32, .decode_local = 32};
    KvCacheConfig c = TestConfig(16, 0, 7, true, w);
    ASSERT_TRUE(c.SetHeadRoles({{0, 0}, {0, 0}}).ok());
    KvCacheManager kv = MakeManager(c);
    EXPECT_TRUE(kv.CheckCanEverFit(1 << 20).ok());
    ASSERT_TRUE(kv.AddSequence(0).ok());
    ASSERT_TRUE(kv.Grow(0, 1 << 20).ok());
    EXPECT_EQ(kv.PagesHeld(0), (PageCounts{0, 7}));
    EXPECT_TRUE(kv.RetrievalPageTable(0).empty());
    EXPECT_FALSE(kv.SlotFor(0, KvPool::kRetrieval, 5).stored());
    EXPECT_TRUE(Consistent(kv, {0}));
  }
}

// A refused Grow changes nothing, in either pool.
TEST(KvCacheManager, RefusedGrowIsAllOrNothingAcrossPools) {
  const Windows w{.prefill_sink = 16, .prefill_local = 32, .decode_sink = 16, .decode_local = 16};
  // S = 1, W = 3: four streaming pages per sequence at most.
  KvCacheManager kv = MakeManager(TestConfig(16, 8, 6, true, w));
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  ASSERT_TRUE(kv.Grow(1, 128).ok());  // all 8 retrieval pages, 4 streaming pages
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).free_pages(), 0);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).free_pages(), 2);
  // Retrieval pool empty, streaming pool has room: nothing is taken.
  EXPECT_FALSE(kv.CanGrow(2, 1));
  EXPECT_EQ(kv.PagesToGrow(2, 1).value(), (PageCounts{1, 1}));
  EXPECT_EQ(kv.Grow(2, 1).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(kv.length(2), 0);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).free_pages(), 2);
  EXPECT_TRUE(Consistent(kv, {1, 2}));
  // Streaming pool short, retrieval pool has room: nothing is taken.
  ASSERT_TRUE(kv.Free(1).ok());
  ASSERT_TRUE(kv.AddSequence(3).ok());
  ASSERT_TRUE(kv.Grow(3, 64).ok());  // 4 + 4 pages
  ASSERT_TRUE(kv.Grow(2, 16).ok());  // 1 + 1 pages
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).free_pages(), 3);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).free_pages(), 1);
  EXPECT_EQ(kv.PagesToGrow(2, 48).value(), (PageCounts{2, 2}));
  EXPECT_FALSE(kv.CanGrow(2, 48));
  const std::vector<int32_t> table(kv.RetrievalPageTable(2).begin(), kv.RetrievalPageTable(2).end());
  EXPECT_EQ(kv.Grow(2, 48).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).free_pages(), 3);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).free_pages(), 1);
  EXPECT_EQ(std::vector<int32_t>(kv.RetrievalPageTable(2).begin(), kv.RetrievalPageTable(2).end()), table);
  EXPECT_EQ(kv.length(2), 16);
  EXPECT_TRUE(Consistent(kv, {2, 3}));
  EXPECT_TRUE(kv.CanGrow(2, 32));

  // Some but not all of the retrieval pages are free: none is taken.
  KvCacheManager small = MakeManager(TestConfig(16, 3, 10, true, w));
  ASSERT_TRUE(small.AddSequence(1).ok());
  ASSERT_TRUE(small.Grow(1, 16).ok());
  EXPECT_EQ(small.PagesToGrow(1, 64).value(), (PageCounts{3, 3}));
  EXPECT_EQ(small.Grow(1, 64).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(small.pool(KvPool::kRetrieval).free_pages(), 2);
  EXPECT_EQ(small.pool(KvPool::kStreaming).free_pages(), 9);
  EXPECT_EQ(small.RetrievalPageTable(1).size(), 1u);
  EXPECT_TRUE(Consistent(small, {1}));
}

// Rotation regression through the manager (LSERVE.md §3.3 [HAZARD], §10 item
// 8): a streaming token written at some step is found at the same (page,
// offset) at every later length for as long as it is stored, before and after
// BeginDecode, and it is stored exactly when it lies in the sink pages or the
// newest W logical pages.
TEST(KvCacheManager, StreamingTokenKeepsItsSlotAsTheRingRotates) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (const int64_t P : {16, 32}) {
    const Windows w{.prefill_sink = 40, .prefill_local = 100, .decode_sink = 20, .decode_local = 50};
    KvCacheManager kv = MakeManager(TestConfig(P, 4096, 64, true, w));
    const int64_t S = kv.config().sink_pages();
    ASSERT_TRUE(kv.AddSequence(9).ok());
    std::map<int64_t, KvSlot> written;  // pos -> slot at its write
    std::set<int64_t> dropped;
    int64_t len = 0;
    auto check_all = [&](int64_t W) {
      const int64_t last = CeilDiv(len, P) - 1;
      for (int64_t pos = 0; pos < len; ++pos) {
        const KvSlot slot = kv.SlotFor(9, KvPool::kStreaming, pos);
        const int64_t b = pos / P;
        const bool in_ring_window = b < S || b > last - W;
        if (!slot.stored()) {
          ASSERT_FALSE(in_ring_window && !dropped.count(pos)) << "pos " << pos << " len " << len;
          dropped.insert(pos);
          continue;
        }
        ASSERT_TRUE(in_ring_window) << "pos " << pos << " len " << len;
        ASSERT_FALSE(dropped.count(pos)) << "pos " << pos << " came back at len " << len;
        ASSERT_EQ(slot.offset, pos % P);
        ASSERT_EQ(slot.page, kv.StreamingPageFor(9, b));
        auto [it, fresh] = written.emplace(pos, slot);
        ASSERT_EQ(it->second, slot) << "pos " << pos << " moved at len " << len;
      }
    };
    // Chunked prefill with random chunk sizes, some longer than the ring.
    while (len < 20 * P) {
      const int64_t chunk = std::uniform_int_distribution<int64_t>(1, 3 * P)(rng);
      ASSERT_TRUE(kv.Grow(9, len + chunk).ok());
      len += chunk;
      check_all(kv.config().prefill_ring_pages());
      ASSERT_TRUE(Consistent(kv, {9}));
    }
    ASSERT_TRUE(kv.BeginDecode(9).ok());
    // The shrink also drops ring pages older than the last decode_local tokens
    // (the BeginDecode test checks which); they never come back.
    for (int64_t pos = 0; pos < len; ++pos) {
      if (!kv.SlotFor(9, KvPool::kStreaming, pos).stored()) dropped.insert(pos);
    }
    for (int step = 0; step < 10 * P; ++step) {
      ASSERT_TRUE(kv.Grow(9, len + 1).ok());
      ++len;
      const int64_t dec_local = kv.config().decode_local;
      for (int64_t pos = std::max<int64_t>(0, len - dec_local); pos < len; ++pos) {
        ASSERT_TRUE(kv.SlotFor(9, KvPool::kStreaming, pos).stored()) << "window token " << pos << " len " << len;
      }
      for (int64_t pos = 0; pos < kv.config().decode_sink; ++pos) {
        ASSERT_TRUE(kv.SlotFor(9, KvPool::kStreaming, pos).stored()) << "sink token " << pos;
      }
      check_all(kv.config().decode_ring_pages());
      ASSERT_LE(kv.PagesHeld(9).streaming, S + kv.config().decode_ring_pages());
      ASSERT_TRUE(Consistent(kv, {9}));
    }
  }
}

// BeginDecode returns every ring page except the sink pages and the pages
// holding the last decode_local tokens; the kept tokens keep their slots.
TEST(KvCacheManager, BeginDecodeKeepsExactlyThePagesOfTheLastDecodeLocalTokens) {
  for (const int64_t P : {16, 32, 64, 128}) {
    const Windows w{.prefill_sink = 128, .prefill_local = 700, .decode_sink = 128, .decode_local = 256};
    for (int64_t len = 1; len <= 1300; len += (len < 300 ? 1 : 13)) {
      SCOPED_TRACE("P " + std::to_string(P) + " len " + std::to_string(len));
      KvCacheManager kv = MakeManager(TestConfig(P, 4096, 64, true, w));
      const int64_t S = kv.config().sink_pages();
      ASSERT_TRUE(kv.AddSequence(1).ok());
      ASSERT_TRUE(kv.Grow(1, len / 2).ok());
      ASSERT_TRUE(kv.Grow(1, len).ok());
      std::map<int64_t, KvSlot> before;
      for (int64_t pos = 0; pos < len; ++pos) before[pos] = kv.SlotFor(1, KvPool::kStreaming, pos);
      const int64_t held_before = kv.PagesHeld(1).streaming;
      ASSERT_TRUE(kv.BeginDecode(1).ok());
      std::set<int64_t> want;  // logical pages
      for (int64_t b = 0; b < std::min(S, CeilDiv(len, P)); ++b) want.insert(b);
      for (int64_t pos = std::max<int64_t>(0, len - 256); pos < len; ++pos) want.insert(pos / P);
      for (int64_t b = 0; b < CeilDiv(len, P); ++b) {
        ASSERT_EQ(kv.StreamingPageFor(1, b) >= 0, want.count(b) == 1) << "logical page " << b;
      }
      ASSERT_EQ(kv.PagesHeld(1).streaming, static_cast<int64_t>(want.size()));
      ASSERT_EQ(kv.pool(KvPool::kStreaming).used_pages(), static_cast<int64_t>(want.size()));
      ASSERT_LE(kv.PagesHeld(1).streaming, held_before);
      ASSERT_EQ(kv.StreamingRingPages(1), 256 / P + 1);
      for (int64_t pos = 0; pos < len; ++pos) {
        const KvSlot after = kv.SlotFor(1, KvPool::kStreaming, pos);
        if (want.count(pos / P)) {
          ASSERT_EQ(after, before[pos]) << "kept token " << pos << " moved";
        } else {
          ASSERT_FALSE(after.stored()) << pos;
        }
      }
      ASSERT_TRUE(kv.BeginDecode(1).ok());  // idempotent
      ASSERT_EQ(kv.PagesHeld(1).streaming, static_cast<int64_t>(want.size()));
      ASSERT_TRUE(Consistent(kv, {1}));
    }
  }
}

// Issue 4: streaming-pool memory does not depend on the context length.
TEST(KvCacheManager, StreamingPagesAreTheSameAt1KAnd64KTokens) {
  auto run = [](int64_t prompt) {
    KvCacheConfig c = TestConfig(64, 1100, 140, true);  // default windows
    KvCacheManager kv = MakeManager(c);
    std::vector<int64_t> held;  // streaming pages held after BeginDecode and each decode step
    EXPECT_TRUE(kv.AddSequence(0).ok());
    int64_t peak = 0;
    for (int64_t len = 0; len < prompt;) {
      len = std::min(prompt, len + 4096);
      EXPECT_TRUE(kv.Grow(0, len).ok());
      peak = std::max(peak, kv.PagesHeld(0).streaming);
    }
    EXPECT_LE(peak, c.sink_pages() + c.prefill_ring_pages());
    EXPECT_TRUE(kv.BeginDecode(0).ok());
    held.push_back(kv.PagesHeld(0).streaming);
    for (int step = 0; step < 300; ++step) {
      EXPECT_TRUE(kv.Grow(0, prompt + step + 1).ok());
      held.push_back(kv.PagesHeld(0).streaming);
    }
    EXPECT_EQ(held.back(), c.sink_pages() + c.decode_ring_pages());
    EXPECT_EQ(kv.PagesHeld(0).retrieval, CeilDiv(prompt + 300, 64));
    EXPECT_TRUE(Consistent(kv, {0}));
    return held;
  };
  EXPECT_EQ(run(1024), run(65536));
  EXPECT_EQ(run(1000), run(65000));  // same offset in the last page
  // While prefilling, a full prefill ring is the same at 16K and 64K.
  for (const int64_t prompt : {16384, 65536}) {
    KvCacheManager kv = MakeManager(TestConfig(64, 1100, 140, true));
    ASSERT_TRUE(kv.AddSequence(0).ok());
    ASSERT_TRUE(kv.Grow(0, prompt).ok());
    EXPECT_EQ(kv.PagesHeld(0).streaming, 2 + 129) << prompt;
  }
}

// Many sequences, random growth, decode and frees: the invariant holds after
// every operation and freeing everything returns every page.
TEST(KvCacheManager, RandomWorkloadKeepsInvariantAndFreeReturnsEveryPage) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (const int64_t P : {16, 32, 64, 128}) {
    const Windows w{.prefill_sink = 2 * P, .prefill_local = 4 * P + 7, .decode_sink = P, .decode_local = 2 * P - 3};
    const bool with_streaming = P != 128;
    KvCacheManager kv = MakeManager(TestConfig(P, 60, with_streaming ? 40 : 0, with_streaming, w));
    std::vector<int64_t> live;
    int64_t next_id = 100;
    for (int op = 0; op < 1500; ++op) {
      const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
      if (kind == 0 || live.empty()) {
        ASSERT_TRUE(kv.AddSequence(next_id).ok());
        live.push_back(next_id++);
      } else {
        const size_t i = std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng);
        const int64_t id = live[i];
        if (kind == 1) {
          ASSERT_TRUE(kv.Free(id).ok());
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
        } else if (kind == 2) {
          ASSERT_TRUE(kv.BeginDecode(id).ok());
        } else {
          const int64_t add = kv.decoding(id) ? 1 : std::uniform_int_distribution<int64_t>(0, 3 * P)(rng);
          const int64_t new_len = kv.length(id) + add;
          const bool can = kv.CanGrow(id, new_len);
          const Status s = kv.Grow(id, new_len);
          ASSERT_EQ(s.ok(), can) << s.ToString();
          if (!s.ok()) {
            ASSERT_EQ(s.code(), StatusCode::kResourceExhausted);
          }
          ASSERT_EQ(kv.length(id), s.ok() ? new_len : new_len - add);
        }
      }
      ASSERT_TRUE(Consistent(kv, live)) << "op " << op;
    }
    for (const int64_t id : live) ASSERT_TRUE(kv.Free(id).ok());
    EXPECT_EQ(kv.num_sequences(), 0);
    EXPECT_EQ(kv.pool(KvPool::kRetrieval).free_pages(), 60);
    EXPECT_EQ(kv.pool(KvPool::kStreaming).free_pages(), with_streaming ? 40 : 0);
    EXPECT_TRUE(Consistent(kv, {}));
  }
}

}  // namespace
}  // namespace lserve
