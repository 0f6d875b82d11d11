// Simulated step loops over the KV cache: a small first-come-first-served
// scheduler (chunked prefill under a token budget, decode first, admission
// only when the whole request's pages are free) drives the manager and the
// batch flattening step by step, and the run is compared as a readable
// timeline.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "kv_test_util.h"
#include "kvcache/paged_batch.h"

namespace lserve {
namespace {

using kvtest::Consistent;
using kvtest::MakeManager;
using kvtest::TestConfig;
using kvtest::Windows;

struct Request {
  std::string name;
  int64_t prompt = 0;
  int64_t generate = 0;  // tokens to generate, >= 1
};

struct Running {
  Request req;
  int64_t id = 0;
  int64_t generated = 0;  // the prefill's last chunk yields the first one
};

// Runs the requests to completion; returns one line per step.
std::vector<std::string> RunTimeline(KvCacheManager& kv, const std::vector<Request>& requests,
                                     int64_t token_budget) {
  std::vector<std::string> timeline;
  std::deque<Request> waiting(requests.begin(), requests.end());
  std::vector<Running> running;
  int64_t next_id = 0;
  for (int step = 0; (!waiting.empty() || !running.empty()) && step < 100; ++step) {
    std::string line = "step " + std::to_string(step) + ":";
    // Admission, first come first served: a request is admitted when the pages
    // of its whole life are free after what admitted ones still need.
    while (!waiting.empty()) {
      const Request& r = waiting.front();
      const Status fits = kv.CheckCanEverFit(r.prompt + r.generate);
      if (!fits.ok()) {
        line += " " + r.name + " refused (" + std::string(StatusCodeName(fits.code())) + ");";
        waiting.pop_front();
        continue;
      }
      int64_t reserved = 0;
      for (const Running& s : running) {
        reserved += kv.PagesNeeded(s.req.prompt + s.req.generate).retrieval - kv.PagesHeld(s.id).retrieval;
      }
      const int64_t need = kv.PagesNeeded(r.prompt + r.generate).retrieval;
      if (kv.pool(KvPool::kRetrieval).free_pages() - reserved < need) break;
      EXPECT_TRUE(kv.AddSequence(next_id).ok());
      running.push_back({r, next_id++, 0});
      line += " +" + r.name + ";";
      waiting.pop_front();
    }
    // Decode tokens first, then prefill chunks in arrival order.
    BatchPlan plan;
    int64_t budget = token_budget;
    for (const Running& s : running) {
      if (s.generated == 0 || budget == 0) continue;
      const int64_t len = kv.length(s.id);
      EXPECT_TRUE(kv.BeginDecode(s.id).ok());
      EXPECT_TRUE(kv.Grow(s.id, len + 1).ok());
      plan.steps.push_back({.seq_id = s.id, .start_pos = len, .tokens = {1}, .is_decode = true,
                            .logits = LogitsWanted::kLast});
      line += " " + s.req.name + " decode@" + std::to_string(len);
      --budget;
    }
    for (const Running& s : running) {
      if (s.generated > 0 || budget == 0) continue;
      const int64_t len = kv.length(s.id);
      const int64_t chunk = std::min(budget, s.req.prompt - len);
      EXPECT_TRUE(kv.Grow(s.id, len + chunk).ok());
      const bool last = len + chunk == s.req.prompt;
      plan.steps.push_back({.seq_id = s.id, .start_pos = len, .tokens = std::vector<int32_t>(chunk, 1),
                            .logits = last ? LogitsWanted::kLast : LogitsWanted::kNone});
      line += " " + s.req.name + " prefill[" + std::to_string(len) + "," + std::to_string(len + chunk) + ")";
      budget -= chunk;
    }
    Result<PagedBatch> batch = BuildPagedBatch(plan, kv, KvPool::kRetrieval);
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch.ok()) EXPECT_EQ(batch->num_tokens, token_budget - budget);
    // Sampling happened; finished sequences leave.
    for (const SequenceStep& st : plan.steps) {
      for (Running& s : running) {
        if (s.id == st.seq_id && st.logits == LogitsWanted::kLast) ++s.generated;
      }
    }
    std::vector<int64_t> live;
    for (auto it = running.begin(); it != running.end();) {
      if (it->generated == it->req.generate) {
        EXPECT_TRUE(kv.Free(it->id).ok());
        line += " " + it->req.name + " done;";
        it = running.erase(it);
      } else {
        live.push_back(it->id);
        ++it;
      }
    }
    EXPECT_TRUE(Consistent(kv, live));
    line += " | used " + std::to_string(kv.pool(KvPool::kRetrieval).used_pages()) + "/" +
            std::to_string(kv.pool(KvPool::kRetrieval).total_pages());
    timeline.push_back(line);
  }
  return timeline;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST(KvStepLoop, ChunkedPrefillAndDecodeShareAPoolOfEightPages) {
  KvCacheManager kv = MakeManager(TestConfig(16, 8, 0, false));  // 128 tokens in all
  const std::vector<Request> requests = {
      {"A", 40, 4}, {"B", 30, 3}, {"C", 70, 2}, {"D", 150, 1}, {"E", 5, 2}};
  const std::vector<std::string> timeline = RunTimeline(kv, requests, 32);
  const std::vector<std::string> want = {
      "step 0: +A; +B; A prefill[0,32) | used 2/8",
  };
  EXPECT_EQ(Join(timeline), Join(want));
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
}

}  // namespace
}  // namespace lserve
