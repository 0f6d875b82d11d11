// The Engine's outputs under continuous batching: equal to the offline
// Generator's for one request, equal to solo runs for many concurrent
// requests (dense and LServe attention), through preemption by recompute,
// cancellation (running and queued) and failures of one request or of a step.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "test_engine_util.h"

namespace lserve {
namespace {

using testing::CreateEngine;
using testing::Drain;
using testing::Greedy;
using testing::KvEmpty;
using testing::LoadOffline;
using testing::Rng;
using testing::RunSolo;
using testing::StreamResult;
using testing::SubmitOk;
using testing::WaitForStats;

FinishKind KindOf(FinishReason r) { return r == FinishReason::kStop ? FinishKind::kStop : FinishKind::kLength; }

void ExpectSameOutput(const StreamResult& got, const StreamResult& want, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_FALSE(got.timed_out);
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.finish, want.finish);
  EXPECT_EQ(got.error, want.error);
  EXPECT_EQ(got.completion_tokens, static_cast<int64_t>(got.ids.size()));
}

void CheckMatchesGenerator(const EngineConfig& config) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(config);
  auto offline = LoadOffline(config);
  ASSERT_NE(engine, nullptr);
  ASSERT_NE(offline, nullptr);
  for (const int64_t length : {1, 7, 32, 33, 100}) {
    SCOPED_TRACE("prompt length " + std::to_string(length));
    const std::vector<int32_t> prompt = rng.Prompt(length);
    SamplingParams params = Greedy(24, /*ignore_eos=*/false);
    auto want = offline->generator->Generate(prompt, params);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    StreamResult got = RunSolo(*engine, prompt, params);
    ASSERT_FALSE(got.timed_out);
    EXPECT_EQ(got.ids, want->ids);
    EXPECT_EQ(got.text, want->text);
    EXPECT_EQ(got.finish, KindOf(want->finish_reason));
    EXPECT_EQ(got.prompt_tokens, length);
    EXPECT_EQ(got.completion_tokens, static_cast<int64_t>(want->ids.size()));
    // Each sampled token came in its own event (one per step).
    EXPECT_EQ(got.events, static_cast<int64_t>(got.ids.size()));

    // A stop string cut out of the middle of that text ends both the same way.
    if (want->text.size() >= 8) {
      const std::string stop = want->text.substr(4, 2);
      if (utf8::IsValid(stop)) {
        params.stop = {stop};
        auto want_stop = offline->generator->Generate(prompt, params);
        ASSERT_TRUE(want_stop.ok()) << want_stop.status().ToString();
        StreamResult got_stop = RunSolo(*engine, prompt, params);
        EXPECT_EQ(got_stop.ids, want_stop->ids);
        EXPECT_EQ(got_stop.text, want_stop->text);
        EXPECT_EQ(got_stop.finish, FinishKind::kStop);
      }
    }
  }
  EXPECT_TRUE(KvEmpty(WaitForStats(*engine, KvEmpty)));
}

TEST(EngineBatching, GreedyOutputsEqualTheGeneratorsDense) { CheckMatchesGenerator(testing::SmallConfig()); }

TEST(EngineBatching, GreedyOutputsEqualTheGeneratorsLServe) {
  CheckMatchesGenerator(testing::LServeConfig(testing::WriteGqaPattern()));
}

// A request of the concurrency tests and its solo output.
struct Job {
  std::vector<int32_t> prompt;
  SamplingParams params;
  StreamResult solo;
};

std::vector<Job> MixedJobs(Rng& rng, int n, int64_t max_prompt, int64_t max_new) {
  std::vector<Job> jobs(static_cast<size_t>(n));
  for (Job& job : jobs) {
    job.prompt = rng.Prompt(rng.Uniform(1, max_prompt));
    if (rng.Uniform(0, 3) == 0) {
      // Seeded sampling: its own random stream, the same whatever the batch.
      job.params.temperature = 0.9;
      job.params.top_k = 40;
      job.params.seed = static_cast<uint64_t>(rng.Uniform(0, 1 << 30));
      job.params.max_tokens = rng.Uniform(1, max_new);
    } else {
      job.params = Greedy(rng.Uniform(1, max_new), /*ignore_eos=*/rng.Uniform(0, 1) == 0);
    }
  }
  return jobs;
}

// Runs every job alone, then all at once; each concurrent output must equal
// its solo output. Returns the engine's stats after the concurrent run.
EngineStats CheckConcurrentEqualsSolo(Engine& engine, std::vector<Job>& jobs) {
  for (Job& job : jobs) job.solo = RunSolo(engine, job.prompt, job.params);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const Job& job : jobs) streams.push_back(SubmitOk(engine, job.prompt, job.params));
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (streams[i] == nullptr) continue;
    ExpectSameOutput(Drain(*streams[i]), jobs[i].solo,
                     "request " + std::to_string(i) + " (prompt " + std::to_string(jobs[i].prompt.size()) +
                         " tokens, max_tokens " + std::to_string(jobs[i].params.max_tokens) + ")");
  }
  const EngineStats stats = WaitForStats(engine, KvEmpty);
  EXPECT_TRUE(KvEmpty(stats));
  return stats;
}

TEST(EngineBatching, ConcurrentRequestsEqualTheirSoloRunsDense) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  std::vector<Job> jobs = MixedJobs(rng, 24, 120, 40);
  const EngineStats stats = CheckConcurrentEqualsSolo(*engine, jobs);
  EXPECT_EQ(stats.preemptions, 0);
}

TEST(EngineBatching, ConcurrentRequestsEqualTheirSoloRunsLServe) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(testing::LServeConfig(testing::WriteGqaPattern()));
  ASSERT_NE(engine, nullptr);
  std::vector<Job> jobs = MixedJobs(rng, 24, 120, 40);
  const EngineStats stats = CheckConcurrentEqualsSolo(*engine, jobs);
  EXPECT_GT(stats.kv_pages_total_streaming, 0);
  // The streaming heads and the page selection skipped work.
  EXPECT_LT(stats.prefill_blocks_visited, stats.prefill_blocks_dense);
  EXPECT_LT(stats.decode_pages_read, stats.decode_pages_dense);
}

// Stronger than equal tokens: every logprob of a batched request has the
// bits of its solo run (RELIABILITY.md 36), so no row's logits depend on the
// other rows of its step. The reference kernels hold this by construction;
// the fast kernels must choose their summation order independently of the
// batch for it to hold.
void CheckBatchedLogprobBitsEqualSolo(EngineConfig config) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  std::vector<Job> jobs = MixedJobs(rng, 12, 80, 12);
  for (Job& job : jobs) {
    job.params.logprobs = true;
    job.params.top_logprobs = 5;
    job.params.logprobs_mode = LogprobsMode::kRaw;
  }
  for (Job& job : jobs) job.solo = RunSolo(*engine, job.prompt, job.params);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const Job& job : jobs) streams.push_back(SubmitOk(*engine, job.prompt, job.params));
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const StreamResult got = Drain(*streams[i]);
    const StreamResult& want = jobs[i].solo;
    ASSERT_EQ(got.ids, want.ids);
    ASSERT_EQ(got.top_logprobs.size(), want.top_logprobs.size());
    // The first difference of each request is reported (the rest follow from it).
    [&] {
      for (size_t t = 0; t < got.top_logprobs.size(); ++t) {
        ASSERT_EQ(got.top_logprobs[t].size(), want.top_logprobs[t].size());
        for (size_t k = 0; k < got.top_logprobs[t].size(); ++k) {
          ASSERT_EQ(got.top_logprobs[t][k].token_id, want.top_logprobs[t][k].token_id) << "token " << t;
          // Exact float comparison.
          ASSERT_EQ(got.top_logprobs[t][k].logprob, want.top_logprobs[t][k].logprob)
              << "token " << t << " rank " << k;
        }
      }
    }();
  }
}

TEST(EngineBatching, BatchedLogprobsAreBitIdenticalToSoloReferenceKernels) {
  for (const bool lserve : {false, true}) {
    SCOPED_TRACE(lserve ? "lserve" : "dense");
    EngineConfig config = lserve ? testing::LServeConfig(testing::WriteGqaPattern()) : testing::SmallConfig();
    config.backend = "cpu-ref";
    CheckBatchedLogprobBitsEqualSolo(config);
  }
}

TEST(EngineBatching, BatchedLogprobsAreBitIdenticalToSoloFastKernels) {
  for (const bool lserve : {false, true}) {
    SCOPED_TRACE(lserve ? "lserve" : "dense");
    CheckBatchedLogprobBitsEqualSolo(lserve ? testing::LServeConfig(testing::WriteGqaPattern())
                                            : testing::SmallConfig());
  }
}

TEST(EngineBatching, ASmallPoolPreemptsAndOutputsStayTheSame) {
  for (const bool lserve : {false, true}) {
    SCOPED_TRACE(lserve ? "lserve" : "dense");
    Rng rng;
    SCOPED_TRACE("seed " + std::to_string(rng.seed()));
    EngineConfig config = lserve ? testing::LServeConfig(testing::WriteGqaPattern()) : testing::SmallConfig();
    config.kv_cache_tokens = 256;  // 16 pages: about two requests at full length
    config.max_running = 8;
    auto engine = CreateEngine(config);
    ASSERT_NE(engine, nullptr);
    EXPECT_EQ(engine->model_info().max_model_len, 256);  // the pool caps the model's 131072
    std::vector<Job> jobs(10);
    for (Job& job : jobs) {
      job.prompt = rng.Prompt(rng.Uniform(20, 60));
      job.params = Greedy(60);
    }
    const EngineStats stats = CheckConcurrentEqualsSolo(*engine, jobs);
    EXPECT_GT(stats.preemptions, 0);
  }
}

TEST(EngineBatching, CancelledRequestsEndAndFreeTheirPages) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  EngineConfig config = testing::SmallConfig();
  config.max_running = 4;
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<RequestStream>> running, queued;
  for (int i = 0; i < 4; ++i) running.push_back(SubmitOk(*engine, rng.Prompt(20), Greedy(300)));
  for (int i = 0; i < 4; ++i) queued.push_back(SubmitOk(*engine, rng.Prompt(30), Greedy(5)));
  // Two queued ones are cancelled before a place frees up (the runners need
  // 300 steps), one runner after three events.
  queued[0]->Cancel();
  queued[1]->Cancel();
  queued[1]->Cancel();  // idempotent
  StreamResult first;
  for (int i = 0; i < 3; ++i) {
    auto e = running[0]->Next(std::chrono::seconds(30));
    ASSERT_TRUE(e.has_value());
    testing::Absorb(first, *e);
  }
  running[0]->Cancel();
  StreamResult cancelled_running = Drain(*running[0]);
  EXPECT_EQ(cancelled_running.finish, FinishKind::kCancelled);
  EXPECT_GE(cancelled_running.completion_tokens, 3);
  EXPECT_LT(cancelled_running.completion_tokens, 300);
  EXPECT_TRUE(running[0]->finished());
  EXPECT_FALSE(running[0]->Next(std::chrono::milliseconds(1)).has_value());
  for (int i = 0; i < 2; ++i) {
    StreamResult r = Drain(*queued[static_cast<size_t>(i)]);
    EXPECT_EQ(r.finish, FinishKind::kCancelled);
    EXPECT_EQ(r.completion_tokens, 0);
    EXPECT_TRUE(r.ids.empty());
    EXPECT_EQ(r.prompt_tokens, 30);
  }
  for (size_t i = 1; i < running.size(); ++i) {
    StreamResult r = Drain(*running[i]);
    EXPECT_EQ(r.finish, FinishKind::kLength);
    EXPECT_EQ(r.completion_tokens, 300);
  }
  for (size_t i = 2; i < queued.size(); ++i) EXPECT_EQ(Drain(*queued[i]).finish, FinishKind::kLength);
  queued[2]->Cancel();  // after the end: no effect
  EXPECT_TRUE(KvEmpty(WaitForStats(*engine, KvEmpty)));

  // Dropping a stream cancels its request.
  const int64_t generated_before = engine->Stats().generated_tokens;
  SubmitOk(*engine, rng.Prompt(10), Greedy(4000)).reset();
  std::shared_ptr<RequestStream> after = SubmitOk(*engine, rng.Prompt(10), Greedy(3));
  EXPECT_EQ(Drain(*after).finish, FinishKind::kLength);
  const EngineStats stats = WaitForStats(*engine, KvEmpty);
  EXPECT_TRUE(KvEmpty(stats));
  EXPECT_LT(stats.generated_tokens - generated_before, 4000);
}

// A fault of one request (NaN logits) ends it alone; a failed step ends the
// requests of that step; the engine serves on.
TEST(EngineBatching, FaultsEndOnlyTheRequestsTheyTouch) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  std::vector<Job> jobs(6);
  for (Job& job : jobs) {
    job.prompt = rng.Prompt(rng.Uniform(5, 50));
    job.params = Greedy(20);
    job.solo = RunSolo(*engine, job.prompt, job.params);
  }
  // Request 2 gets NaN logits: the hook knows it by its first prefill chunk.
  const std::vector<int32_t> first_chunk(
      jobs[2].prompt.begin(),
      jobs[2].prompt.begin() + std::min<std::ptrdiff_t>(32, static_cast<std::ptrdiff_t>(jobs[2].prompt.size())));
  auto poisoned = std::make_shared<int64_t>(-1);  // engine thread only
  engine->SetForwardHookForTesting([poisoned, first_chunk](const BatchPlan& plan, ForwardOutput& out) {
    for (const SequenceStep& step : plan.steps) {
      if (step.start_pos == 0 && step.tokens == first_chunk) *poisoned = step.seq_id;
    }
    for (size_t r = 0; r < out.rows.size(); ++r) {
      if (out.rows[r].seq_id != *poisoned) continue;
      std::fill_n(out.logits.begin() + static_cast<std::ptrdiff_t>(r * out.vocab), out.vocab, NAN);
    }
    return Status::Ok();
  });
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const Job& job : jobs) streams.push_back(SubmitOk(*engine, job.prompt, job.params));
  for (size_t i = 0; i < jobs.size(); ++i) {
    StreamResult r = Drain(*streams[i]);
    if (i == 2) {
      EXPECT_EQ(r.finish, FinishKind::kError);
      EXPECT_FALSE(r.error.empty());
      EXPECT_TRUE(r.ids.empty());
      EXPECT_TRUE(r.text.empty());
    } else {
      ExpectSameOutput(r, jobs[i].solo, "request " + std::to_string(i));
    }
  }

  // The 3rd step from now fails as a whole.
  auto steps = std::make_shared<std::atomic<int>>(0);
  engine->SetForwardHookForTesting([steps](const BatchPlan&, ForwardOutput&) {
    return ++*steps == 3 ? Internal("injected step failure") : Status::Ok();
  });
  streams.clear();
  for (const Job& job : jobs) streams.push_back(SubmitOk(*engine, job.prompt, job.params));
  int failed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    StreamResult r = Drain(*streams[i]);
    if (r.finish == FinishKind::kError) {
      ++failed;
      EXPECT_NE(r.error.find("injected step failure"), std::string::npos) << r.error;
    } else {
      ExpectSameOutput(r, jobs[i].solo, "request " + std::to_string(i));
    }
  }
  EXPECT_GE(failed, 1);
  engine->SetForwardHookForTesting(nullptr);
  ExpectSameOutput(RunSolo(*engine, jobs[0].prompt, jobs[0].params), jobs[0].solo, "after the failures");
  EXPECT_TRUE(KvEmpty(WaitForStats(*engine, KvEmpty)));
}

}  // namespace
}  // namespace lserve
