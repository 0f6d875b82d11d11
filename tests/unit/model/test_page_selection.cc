// When decode rows run the page selector and when they reuse its lists
// (model/page_selection.h), including the LSERVE.md §5 hazard: a reused set
// must never span a page boundary (the newest page would be frozen).
#include <gtest/gtest.h>

#include "backend/cpu_backend.h"
#include "model/page_selection.h"

namespace lserve {
namespace {

struct Fixture {
  CpuBackend backend{CpuBackendOptions{.mode = CpuMode::kReference}};
  KvCacheManager kv;
  PageSelectionStore store;
  SelectionPolicy policy{.page_size = 16, .token_budget = 64, .select_interval = 4};

  static KvCacheConfig Config() {
    KvCacheConfig c;
    c.page_size = 16;
    c.logical_page_size = 4;
    c.num_layers = 2;
    c.num_kv_heads = 2;
    c.head_dim = 4;
    c.num_retrieval_pages = 64;
    c.SetAllHeadsRetrieval();
    return c;
  }
  Fixture() : kv(std::move(KvCacheManager::Create(Config())).value()) {}

  // One decode step of `seq` at position `pos`; returns "S" (select), "R"
  // (reuse) or "-" (dense, no action).
  std::string Step(int64_t seq, int64_t pos) {
    if (!kv.Contains(seq)) {
      EXPECT_TRUE(kv.AddSequence(seq).ok());
      EXPECT_TRUE(kv.Grow(seq, pos).ok());
      EXPECT_TRUE(kv.BeginDecode(seq).ok());
    }
    EXPECT_TRUE(kv.Grow(seq, pos + 1).ok());
    BatchPlan plan;
    plan.steps.push_back(
        SequenceStep{.seq_id = seq, .start_pos = pos, .tokens = {1}, .is_decode = true, .logits = LogitsWanted::kLast});
    auto actions = store.Plan(plan, kv, policy, backend, 2, 2);
    EXPECT_TRUE(actions.ok());
    if (actions->empty()) return "-";
    EXPECT_EQ(actions->size(), 1u);
    return (*actions)[0].select ? "S" : "R";
  }
};

TEST(PageSelection, DenseWithinBudgetThenSelectEveryIntervalAndAtEachNewPage) {
  Fixture f;
  std::string trace;
  // Lengths 63..100 (pos + 1): dense up to 64 tokens; then selections at the
  // first step past the budget, every 4 steps, and whenever a new page starts
  // (lengths 81 and 97 open pages 5 and 6).
  for (int64_t pos = 62; pos < 100; ++pos) trace += f.Step(7, pos);
  EXPECT_EQ(trace,
            "--"          // lengths 63, 64: within the budget
            "SRRRSRRRSRRRS"  // 65..77
            "RRR"         // 78..80
            "SRRR"        // 81: page 5 starts
            "SRRRSRRRSRRR"   // 85..96
            "SRRR");      // 97: page 6 starts
  EXPECT_EQ(f.store.size(), 1);
}

TEST(PageSelection, AStepThatDoesNotContinueTheLastOneSelectsAfresh) {
  Fixture f;
  EXPECT_EQ(f.Step(3, 70), "S");
  EXPECT_EQ(f.Step(3, 71), "R");
  // The sequence is freed and a new one with the same id starts elsewhere.
  ASSERT_TRUE(f.kv.Free(3).ok());
  EXPECT_EQ(f.Step(3, 90), "S");
  EXPECT_EQ(f.Step(3, 91), "R");
}

TEST(PageSelection, FreedSequencesAreDroppedAndOthersKeepTheirLists) {
  Fixture f;
  EXPECT_EQ(f.Step(1, 70), "S");
  EXPECT_EQ(f.Step(2, 100), "S");
  EXPECT_EQ(f.store.size(), 2);
  ASSERT_TRUE(f.kv.Free(1).ok());
  EXPECT_EQ(f.Step(2, 101), "R");
  EXPECT_EQ(f.store.size(), 1);
  EXPECT_EQ(f.store.total_selections(), 2);
}

}  // namespace
}  // namespace lserve
