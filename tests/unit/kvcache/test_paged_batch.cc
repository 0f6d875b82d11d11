#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kv_test_util.h"
#include "kvcache/paged_batch.h"

namespace lserve {
namespace {

using kvtest::MakeManager;
using kvtest::TestConfig;
using kvtest::Windows;

std::vector<int32_t> Tokens(int64_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), 1000);
  return t;
}

std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; ++i) v.push_back(i);
  return v;
}

// The example of paged_batch.h, plus a prefill chunk at an offset: one step
// with a first chunk, a decode token and a later chunk of another sequence.
TEST(PagedBatch, MixedPrefillAndDecodeStep) {
  KvCacheManager kv = MakeManager(TestConfig(16, 16, 0, false));
  ASSERT_TRUE(kv.AddSequence(7).ok());
  ASSERT_TRUE(kv.Grow(7, 20).ok());  // pages 0 1
  ASSERT_TRUE(kv.AddSequence(3).ok());
  ASSERT_TRUE(kv.Grow(3, 40).ok());  // pages 2 3 4
  ASSERT_TRUE(kv.AddSequence(5).ok());
  ASSERT_TRUE(kv.Grow(5, 10).ok());  // page 5 (a chunk of an earlier step)
  ASSERT_TRUE(kv.BeginDecode(3).ok());
  ASSERT_TRUE(kv.Grow(3, 41).ok());
  ASSERT_TRUE(kv.Grow(5, 22).ok());  // page 6
  BatchPlan plan{.steps = {
                     {.seq_id = 7, .start_pos = 0, .tokens = Tokens(20), .logits = LogitsWanted::kLast},
                     {.seq_id = 3, .start_pos = 40, .tokens = {42}, .is_decode = true, .logits = LogitsWanted::kLast},
                     {.seq_id = 5, .start_pos = 10, .tokens = Tokens(12)},
                 }};
  Result<PagedBatch> batch = BuildPagedBatch(plan, kv, KvPool::kRetrieval);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->num_seqs, 3);
  EXPECT_EQ(batch->num_tokens, 33);
  EXPECT_EQ(batch->page_size, 16);
  EXPECT_EQ(batch->q_start, (std::vector<int64_t>{0, 20, 21, 33}));
  EXPECT_EQ(batch->q_pos0, (std::vector<int64_t>{0, 40, 10}));
  EXPECT_EQ(batch->kv_len, (std::vector<int64_t>{20, 41, 22}));
  EXPECT_EQ(batch->page_table, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(batch->page_table_start, (std::vector<int64_t>{0, 2, 5, 7}));
  std::vector<int64_t> positions = Range(0, 20);
  positions.push_back(40);
  for (const int64_t p : Range(10, 22)) positions.push_back(p);
  EXPECT_EQ(batch->positions, positions);
  std::vector<int32_t> pages, offsets;
  for (int64_t p = 0; p < 20; ++p) {
    pages.push_back(p < 16 ? 0 : 1);
    offsets.push_back(static_cast<int32_t>(p % 16));
  }
  pages.push_back(4);
  offsets.push_back(8);
  for (int64_t p = 10; p < 22; ++p) {
    pages.push_back(p < 16 ? 5 : 6);
    offsets.push_back(static_cast<int32_t>(p % 16));
  }
  EXPECT_EQ(batch->slot_page, pages);
  EXPECT_EQ(batch->slot_offset, offsets);
  EXPECT_TRUE(batch->ring_pages.empty());

  // The streaming pool of an all-retrieval model: nothing to read or write.
  Result<PagedBatch> streaming = BuildPagedBatch(plan, kv, KvPool::kStreaming);
  ASSERT_TRUE(streaming.ok());
  EXPECT_EQ(streaming->q_start, batch->q_start);
  EXPECT_EQ(streaming->kv_len, batch->kv_len);
  EXPECT_TRUE(streaming->page_table.empty());
  EXPECT_EQ(streaming->page_table_start, (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(streaming->slot_page, std::vector<int32_t>(33, -1));
  EXPECT_EQ(streaming->sink_pages, 0);
}

// A decoding sequence (decode ring) and a prefill chunk longer than the
// prefill ring in one step: each row's slot agrees with the ring formula over
// the flattened table, tokens overwritten within the step are not stored,
// and no (page, offset) is written twice.
TEST(PagedBatch, StreamingPoolRingsOfBothWidths) {
  const Windows w{.prefill_sink = 32, .prefill_local = 48, .decode_sink = 32, .decode_local = 32};
  KvCacheManager kv = MakeManager(TestConfig(16, 64, 32, true, w));  // S 2, W 4 then 3
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.Grow(1, 100).ok());
  ASSERT_TRUE(kv.BeginDecode(1).ok());
  ASSERT_TRUE(kv.Grow(1, 101).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  ASSERT_TRUE(kv.Grow(2, 120).ok());
  BatchPlan plan{.steps = {{.seq_id = 2, .start_pos = 0, .tokens = Tokens(120)},
                           {.seq_id = 1, .start_pos = 100, .tokens = {5}, .is_decode = true}}};
  Result<PagedBatch> batch = BuildPagedBatch(plan, kv, KvPool::kStreaming);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->sink_pages, 2);
  EXPECT_EQ(batch->ring_pages, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(batch->page_table_start, (std::vector<int64_t>{0, 6, 11}));
  std::set<std::pair<int32_t, int32_t>> written;
  for (int64_t s = 0; s < 2; ++s) {
    const int64_t id = plan.steps[static_cast<size_t>(s)].seq_id;
    for (int64_t row = batch->q_start[s]; row < batch->q_start[s + 1]; ++row) {
      const int64_t pos = batch->positions[static_cast<size_t>(row)];
      const int32_t page = batch->slot_page[static_cast<size_t>(row)];
      EXPECT_EQ(page, kv.SlotFor(id, KvPool::kStreaming, pos).page) << "row " << row;
      if (page < 0) continue;
      const int64_t b = pos / 16;
      const int64_t slot = b < batch->sink_pages ? b : batch->sink_pages + (b - batch->sink_pages) % batch->ring_pages[s];
      EXPECT_EQ(page, batch->page_table[static_cast<size_t>(batch->page_table_start[s] + slot)]) << "row " << row;
      EXPECT_EQ(batch->slot_offset[static_cast<size_t>(row)], pos % 16);
      EXPECT_TRUE(written.emplace(page, batch->slot_offset[static_cast<size_t>(row)]).second) << "row " << row;
    }
  }
  // Sequence 2 (pages 0..7): sink pages 0 1 and ring pages 4..7 are written;
  // pages 2 and 3 are overwritten within the step, so never stored.
  for (int64_t pos = 0; pos < 120; ++pos) {
    const int64_t b = pos / 16;
    EXPECT_EQ(batch->slot_page[static_cast<size_t>(pos)] >= 0, b < 2 || b >= 4) << pos;
  }
  EXPECT_GE(batch->slot_page[120], 0);  // the decode token
}

TEST(PagedBatch, RejectsPlansThatDoNotMatchTheCache) {
  KvCacheManager kv = MakeManager(TestConfig(16, 16, 0, false));
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ASSERT_TRUE(kv.Grow(1, 10).ok());
  ASSERT_TRUE(kv.AddSequence(2).ok());
  ASSERT_TRUE(kv.Grow(2, 5).ok());
  auto code = [&](BatchPlan plan) { return BuildPagedBatch(plan, kv, KvPool::kRetrieval).status().code(); };
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 0, .tokens = Tokens(10)}}}), StatusCode::kOk);
  EXPECT_EQ(code({}), StatusCode::kOk);  // an empty step is valid
  EXPECT_EQ(code({.steps = {{.seq_id = 9, .start_pos = 0, .tokens = Tokens(1)}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 0, .tokens = Tokens(10)},
                            {.seq_id = 1, .start_pos = 0, .tokens = Tokens(10)}}}),
            StatusCode::kInvalidArgument);  // twice in one step
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 0, .tokens = Tokens(9)}}}),
            StatusCode::kInvalidArgument);  // Grow not matched
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 10, .tokens = {}}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = -1, .tokens = Tokens(11)}}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 9, .tokens = {3}, .is_decode = true}}}),
            StatusCode::kInvalidArgument);  // decode before BeginDecode
  ASSERT_TRUE(kv.BeginDecode(1).ok());
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 9, .tokens = {3}, .is_decode = true}}}), StatusCode::kOk);
  EXPECT_EQ(code({.steps = {{.seq_id = 1, .start_pos = 8, .tokens = {3, 4}, .is_decode = true}}}),
            StatusCode::kInvalidArgument);  // a decode step is one token
}

// Random mixed steps over many sequences: every row's slot is the page table
// entry of its logical page, the tables cover exactly kv_len, and no slot is
// written twice in a step.
TEST(PagedBatch, RandomMixedStepsAgreeWithTheTables) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (const int64_t P : {16, 64}) {
    KvCacheManager kv = MakeManager(TestConfig(P, 4096, 0, false));
    for (int64_t id = 0; id < 6; ++id) ASSERT_TRUE(kv.AddSequence(id).ok());
    for (int step = 0; step < 60; ++step) {
      BatchPlan plan;
      for (int64_t id = 0; id < 6; ++id) {
        if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) continue;
        const bool decode = kv.decoding(id) || (kv.length(id) > 0 && std::uniform_int_distribution<int>(0, 3)(rng) == 0);
        if (decode) {
          ASSERT_TRUE(kv.BeginDecode(id).ok());
        }
        const int64_t n = decode ? 1 : std::uniform_int_distribution<int64_t>(1, 2 * P + 3)(rng);
        const int64_t start = kv.length(id);
        ASSERT_TRUE(kv.Grow(id, start + n).ok());
        plan.steps.push_back({.seq_id = id, .start_pos = start, .tokens = Tokens(n), .is_decode = decode});
      }
      Result<PagedBatch> batch = BuildPagedBatch(plan, kv, KvPool::kRetrieval);
      ASSERT_TRUE(batch.ok()) << batch.status().ToString();
      std::set<std::pair<int32_t, int32_t>> written;
      for (int64_t s = 0; s < batch->num_seqs; ++s) {
        const int64_t pages = batch->page_table_start[s + 1] - batch->page_table_start[s];
        ASSERT_EQ(pages, (batch->kv_len[s] + P - 1) / P);
        ASSERT_EQ(batch->kv_len[s], batch->q_pos0[s] + batch->q_start[s + 1] - batch->q_start[s]);
        for (int64_t row = batch->q_start[s]; row < batch->q_start[s + 1]; ++row) {
          const int64_t pos = batch->positions[static_cast<size_t>(row)];
          ASSERT_EQ(pos, batch->q_pos0[s] + row - batch->q_start[s]);
          ASSERT_EQ(batch->slot_page[static_cast<size_t>(row)],
                    batch->page_table[static_cast<size_t>(batch->page_table_start[s] + pos / P)]);
          ASSERT_EQ(batch->slot_offset[static_cast<size_t>(row)], pos % P);
          ASSERT_TRUE(written.emplace(batch->slot_page[static_cast<size_t>(row)],
                                      batch->slot_offset[static_cast<size_t>(row)]).second);
        }
      }
    }
    ASSERT_TRUE(kv.CheckInvariant().ok());
  }
}

}  // namespace
}  // namespace lserve
