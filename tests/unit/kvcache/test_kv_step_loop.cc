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
      PageCounts reserved;
      for (const Running& s : running) {
        const PageCounts most = kv.PagesNeeded(s.req.prompt + s.req.generate);
        reserved.retrieval += most.retrieval - kv.PagesHeld(s.id).retrieval;
        reserved.streaming += std::max<int64_t>(0, most.streaming - kv.PagesHeld(s.id).streaming);
      }
      const PageCounts need = kv.PagesNeeded(r.prompt + r.generate);
      if (kv.pool(KvPool::kRetrieval).free_pages() - reserved.retrieval < need.retrieval ||
          kv.pool(KvPool::kStreaming).free_pages() - reserved.streaming < need.streaming) {
        break;
      }
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
    for (const KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
      Result<PagedBatch> batch = BuildPagedBatch(plan, kv, pool);
      EXPECT_TRUE(batch.ok()) << batch.status().ToString();
      if (batch.ok()) {
        EXPECT_EQ(batch->num_tokens, token_budget - budget);
      }
    }
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
    if (kv.config().has_streaming_heads()) {
      line += " streaming " + std::to_string(kv.pool(KvPool::kStreaming).used_pages()) + "/" +
              std::to_string(kv.pool(KvPool::kStreaming).total_pages());
    }
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
  // A and B fit together (3 + 3 pages reserved); C (5 pages) waits for them
  // and E waits behind C; D can never fit (10 pages) and is refused when it
  // reaches the head of the queue.
  const std::vector<std::string> want = {
      "step 0: +A; +B; A prefill[0,32) | used 2/8",
      "step 1: A prefill[32,40) B prefill[0,24) | used 5/8",
      "step 2: A decode@40 B prefill[24,30) | used 5/8",
      "step 3: A decode@41 B decode@30 | used 5/8",
      "step 4: A decode@42 B decode@31 A done; B done; | used 0/8",
      "step 5: +C; D refused (resource_exhausted); +E; C prefill[0,32) | used 2/8",
      "step 6: C prefill[32,64) | used 4/8",
      "step 7: C prefill[64,70) E prefill[0,5) | used 6/8",
      "step 8: C decode@70 E decode@5 C done; E done; | used 0/8",
  };
  EXPECT_EQ(Join(timeline), Join(want));
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
}

// With streaming heads: the ring grows with the prompt up to S + W (prefill
// width), shrinks at the first decode step to the sink page plus the pages of
// the last decode_local tokens, and stays bounded while retrieval pages grow.
TEST(KvStepLoop, StreamingRingGrowsThenShrinksAtDecode) {
  // P 16; S = 1 (sink 16), W = 4 while prefilling (local 48), 2 when decoding (local 16).
  const Windows w{.prefill_sink = 16, .prefill_local = 48, .decode_sink = 16, .decode_local = 16};
  KvCacheManager kv = MakeManager(TestConfig(16, 16, 7, true, w));
  const std::vector<Request> requests = {{"A", 100, 5}, {"B", 20, 3}};
  const std::vector<std::string> timeline = RunTimeline(kv, requests, 40);
  // Step 2: A's ring holds sink page 0 and pages 3..6 (5 of 7), B's pages 0, 1.
  // Step 3: at their first decode A keeps pages 0, 5, 6 (tokens 84..99) and B
  // keeps pages 0, 1 (tokens 4..19): 2 streaming pages go back.
  const std::vector<std::string> want = {
      "step 0: +A; +B; A prefill[0,40) | used 3/16 streaming 3/7",
      "step 1: A prefill[40,80) | used 5/16 streaming 5/7",
      "step 2: A prefill[80,100) B prefill[0,20) | used 9/16 streaming 7/7",
      "step 3: A decode@100 B decode@20 | used 9/16 streaming 5/7",
      "step 4: A decode@101 B decode@21 B done; | used 7/16 streaming 3/7",
      "step 5: A decode@102 | used 7/16 streaming 3/7",
      "step 6: A decode@103 A done; | used 0/16 streaming 0/7",
  };
  EXPECT_EQ(Join(timeline), Join(want));
}

}  // namespace
}  // namespace lserve
