// Scheduler under load: pools too small for the load (preemption by
// recompute must leave every output as it is when the request runs alone),
// and random runs with cancellations, random limits and pools, checked step by
// step by the simulated engine (sched_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sched_test_util.h"

namespace lserve {
namespace {

using schedtest::MakeKv;
using schedtest::MakeScheduler;
using schedtest::Prompt;
using schedtest::RetrievalConfig;
using schedtest::SimOptions;
using schedtest::SimRequest;
using schedtest::SimResult;
using schedtest::Simulate;
using schedtest::SoloOutput;
using schedtest::StreamingConfig;

// Every request that finished produced its solo output; the others were
// cancelled or refused; the pools are empty again.
void ExpectOutcome(const std::vector<SimRequest>& requests, const SimResult& result, const KvCacheManager& kv,
                   const Scheduler& sched, bool stop_tokens) {
  for (const SimRequest& r : requests) {
    if (result.refused.count(r.id) || result.cancelled.count(r.id)) {
      EXPECT_EQ(result.outputs.count(r.id), 0u);
      continue;
    }
    ASSERT_EQ(result.outputs.count(r.id), 1u) << "r" << r.id << " did not finish";
    EXPECT_EQ(result.outputs.at(r.id), SoloOutput(r.prompt, r.max_new_tokens, stop_tokens)) << "r" << r.id;
  }
  EXPECT_EQ(sched.num_requests(), 0);
  EXPECT_TRUE(kv.CheckInvariant().ok());
  EXPECT_EQ(kv.num_sequences(), 0);
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).used_pages(), 0);
}

// First admissions follow the order of Add (no overtaking).
void ExpectFcfs(const std::vector<SimRequest>& requests, const SimResult& result) {
  std::vector<int64_t> added;  // accepted ids in Add order (Simulate adds by arrival step, stably)
  std::vector<const SimRequest*> order;
  for (const SimRequest& r : requests) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(),
                   [](const SimRequest* a, const SimRequest* b) { return a->arrival_step < b->arrival_step; });
  for (const SimRequest* r : order) {
    if (!result.refused.count(r->id)) added.push_back(r->id);
  }
  // The first admissions are `added` minus the requests cancelled before
  // their first admission, in the same order.
  size_t k = 0;
  for (const int64_t id : result.first_admissions) {
    while (k < added.size() && added[k] != id) {
      EXPECT_TRUE(result.cancelled.count(added[k])) << "r" << added[k] << " was overtaken by r" << id;
      ++k;
    }
    ASSERT_LT(k, added.size()) << "r" << id << " admitted out of order";
    ++k;
  }
}

// 8 requests' worth of pages, 24 requests of up to 160 tokens each, all at once
// (RELIABILITY.md D29 at the scale of a unit test).
TEST(SchedulerStress, TooSmallPoolPreemptsAndKeepsOutputs) {
  for (const bool streaming : {false, true}) {
    SCOPED_TRACE(streaming ? "streaming" : "retrieval");
    std::vector<SimRequest> requests;
    for (int64_t i = 0; i < 24; ++i) {
      requests.push_back({.id = i, .prompt = Prompt(40 + (i * 13) % 57, static_cast<int32_t>(i)),
                          .max_new_tokens = 40 + (i * 7) % 25});
    }
    const SchedulerConfig config{.max_running = 64, .max_step_tokens = 96, .prefill_chunk = 32};
    const SimOptions options{.stop_tokens = true, .render = false};
    // Solo: each request alone with a large pool.
    int64_t solo_steps = 0;
    for (const SimRequest& r : requests) {
      KvCacheManager kv = MakeKv(streaming ? StreamingConfig(64, 64) : RetrievalConfig(64));
      Scheduler sched = MakeScheduler(config, &kv);
      const SimResult solo = Simulate(sched, kv, {r}, options);
      EXPECT_EQ(solo.outputs.at(r.id), SoloOutput(r.prompt, r.max_new_tokens, true));
      solo_steps += solo.steps;
    }
    KvCacheManager kv = MakeKv(streaming ? StreamingConfig(8 * 10, 8 * 3) : RetrievalConfig(8 * 10));
    Scheduler sched = MakeScheduler(config, &kv);
    const SimResult result = Simulate(sched, kv, requests, options);
    EXPECT_GT(sched.total_preemptions(), 0);
    ExpectOutcome(requests, result, kv, sched, true);
    ExpectFcfs(requests, result);
    // Batching still beats running the requests one after another.
    EXPECT_LT(result.steps, solo_steps);
  }
}

struct RandomRun {
  KvCacheConfig kv_config;
  SchedulerConfig config;
  std::vector<SimRequest> requests;
};

RandomRun MakeRandomRun(std::mt19937_64& rng) {
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  RandomRun run;
  run.config.max_running = uniform(1, 10);
  run.config.max_step_tokens = uniform(1, 96);
  run.config.prefill_chunk = uniform(1, 48);
  const int64_t retrieval_pages = uniform(4, 40);
  if (uniform(0, 1) == 1) {
    run.kv_config = StreamingConfig(retrieval_pages, uniform(6, 30), run.config.prefill_chunk + uniform(0, 16));
  } else {
    run.kv_config = RetrievalConfig(retrieval_pages);
  }
  const int64_t n = uniform(20, 50);
  for (int64_t i = 0; i < n; ++i) {
    SimRequest r{.id = 1000 + i * 3,
                 .prompt = Prompt(uniform(1, 90), static_cast<int32_t>(uniform(0, 1 << 20))),
                 .max_new_tokens = uniform(1, 40),
                 .arrival_step = uniform(0, 60)};
    const int64_t cancel = uniform(0, 99);
    if (cancel < 8) r.cancel_step = r.arrival_step + uniform(0, 3);    // likely still queued
    else if (cancel < 16) r.cancel_step = r.arrival_step + uniform(2, 60);  // likely running
    run.requests.push_back(std::move(r));
  }
  // One request longer than the retrieval pool: refused up front.
  run.requests.push_back({.id = 7, .prompt = Prompt(retrieval_pages * 16 - uniform(0, 8), 7),
                          .max_new_tokens = uniform(9, 20), .arrival_step = uniform(0, 60)});
  return run;
}

TEST(SchedulerStress, RandomLoadsWithCancellation) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  int64_t preemptions = 0;
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const RandomRun run = MakeRandomRun(rng);
    KvCacheManager kv = MakeKv(run.kv_config);
    Scheduler sched = MakeScheduler(run.config, &kv);
    const SimResult result =
        Simulate(sched, kv, run.requests, {.stop_tokens = true, .max_steps = 20000, .render = false});
    for (const auto& [id, status] : result.refused) {
      EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
      const SimRequest& r = *std::find_if(run.requests.begin(), run.requests.end(),
                                          [id = id](const SimRequest& q) { return q.id == id; });
      EXPECT_FALSE(kv.CheckCanEverFit(static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens).ok());
    }
    ExpectOutcome(run.requests, result, kv, sched, true);
    ExpectFcfs(run.requests, result);
    if (::testing::Test::HasFailure()) return;
    EXPECT_EQ(result.refused.count(7), 1u);
    preemptions += sched.total_preemptions();
  }
  // Not by construction, but the rounds preempt hundreds of times in all.
  EXPECT_GT(preemptions, 0);
}

}  // namespace
}  // namespace lserve
