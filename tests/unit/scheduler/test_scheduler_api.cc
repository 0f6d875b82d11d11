// Scheduler API: configuration, request validation, Commit/Finish in every
// phase, queries, and the cases a synchronous step loop never reaches
// (preemption while a token is being sampled, a KV cache shared by mistake).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "kvcache/paged_batch.h"
#include "sched_test_util.h"

namespace lserve {
namespace {

using schedtest::MakeKv;
using schedtest::MakeScheduler;
using schedtest::NextToken;
using schedtest::Prompt;
using schedtest::RetrievalConfig;
using schedtest::SimRequest;
using schedtest::Simulate;
using schedtest::SoloOutput;
using schedtest::StreamingConfig;

ScheduledStep MustSchedule(Scheduler& sched, const KvCacheManager& kv) {
  Result<ScheduledStep> step = sched.Schedule();
  EXPECT_TRUE(step.ok()) << step.status().ToString();
  if (!step.ok()) return {};
  EXPECT_TRUE(ValidateBatchPlan(step->plan, kv).ok());
  EXPECT_TRUE(kv.CheckInvariant().ok());
  EXPECT_TRUE(sched.CheckInvariant().ok());
  return std::move(step).value();
}

// Commits the fake model's token for every step of `step` that wants logits.
void CommitAll(Scheduler& sched, const ScheduledStep& step) {
  for (const SequenceStep& s : step.plan.steps) {
    if (s.logits != LogitsWanted::kLast) continue;
    const std::span<const int32_t> t = sched.tokens(s.seq_id);
    EXPECT_TRUE(sched.Commit(s.seq_id, NextToken({t.begin(), t.end()})).ok());
  }
}

const SequenceStep* StepOf(const ScheduledStep& step, int64_t id) {
  for (const SequenceStep& s : step.plan.steps) {
    if (s.seq_id == id) return &s;
  }
  return nullptr;
}

TEST(SchedulerConfig, Validate) {
  EXPECT_TRUE(SchedulerConfig{}.Validate().ok());
  EXPECT_TRUE((SchedulerConfig{.max_running = 1, .max_step_tokens = 1, .prefill_chunk = 1}).Validate().ok());
  EXPECT_EQ(SchedulerConfig{.max_running = 0}.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SchedulerConfig{.max_step_tokens = -4}.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SchedulerConfig{.prefill_chunk = 0}.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(Scheduler, CreateRejects) {
  KvCacheManager kv = MakeKv(RetrievalConfig(8));
  EXPECT_EQ(Scheduler::Create({}, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Scheduler::Create({.max_running = 0}, &kv).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(kv.AddSequence(5).ok());
  EXPECT_EQ(Scheduler::Create({}, &kv).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(kv.Free(5).ok());
  EXPECT_TRUE(Scheduler::Create({}, &kv).ok());
  // Retrieval pages do not depend on the chunk length; streaming rings do.
  EXPECT_TRUE(Scheduler::Create({.prefill_chunk = 4096}, &kv).ok());
  KvCacheManager streaming = MakeKv(StreamingConfig(8, 8, /*prefill_chunk=*/32));
  EXPECT_TRUE(Scheduler::Create({.prefill_chunk = 32}, &streaming).ok());
  EXPECT_TRUE(Scheduler::Create({.prefill_chunk = 16}, &streaming).ok());
  EXPECT_EQ(Scheduler::Create({.prefill_chunk = 33}, &streaming).status().code(), StatusCode::kInvalidArgument);
}

TEST(Scheduler, AddValidates) {
  KvCacheManager kv = MakeKv(RetrievalConfig(4));  // 64 tokens
  Scheduler sched = MakeScheduler({}, &kv);
  EXPECT_EQ(sched.Add(1, {}, 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sched.Add(1, {1, 2}, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sched.Add(1, {1, 2}, -3).code(), StatusCode::kInvalidArgument);
  // Never fits: refused up front, never queued.
  EXPECT_EQ(sched.Add(1, Prompt(60, 1), 5).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(sched.Add(1, Prompt(70, 1), 1).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(sched.Add(1, {1}, std::numeric_limits<int64_t>::max()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(sched.Add(1, {1}, KvCacheManager::kMaxSequenceTokens).code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(sched.Contains(1));
  EXPECT_EQ(sched.num_waiting(), 0);
  // Exactly the whole pool fits.
  EXPECT_TRUE(sched.Add(1, Prompt(60, 1), 4).ok());
  EXPECT_EQ(sched.Add(1, {7}, 1).code(), StatusCode::kInvalidArgument);  // duplicate while waiting
  ASSERT_EQ(MustSchedule(sched, kv).plan.steps.size(), 1u);
  EXPECT_EQ(sched.Add(1, {7}, 1).code(), StatusCode::kInvalidArgument);  // duplicate while running
  ASSERT_TRUE(sched.Finish(1).ok());
  EXPECT_TRUE(sched.Add(1, {7}, 1).ok());  // ids can be reused once finished
}

TEST(Scheduler, AddRefusesWhatTheStreamingPoolCannotHold) {
  // A prefilling sequence holds min(pages, 1 + 5) streaming pages.
  KvCacheManager kv = MakeKv(StreamingConfig(64, 4));
  Scheduler sched = MakeScheduler({.prefill_chunk = 32}, &kv);
  EXPECT_TRUE(sched.Add(0, Prompt(60, 0), 4).ok());                                      // 4 pages
  EXPECT_EQ(sched.Add(1, Prompt(60, 1), 5).code(), StatusCode::kResourceExhausted);  // 5 pages
}

// The only request exactly fills the pool; it runs without preemption.
TEST(Scheduler, LoneRequestFillingThePoolRuns) {
  KvCacheManager kv = MakeKv(RetrievalConfig(4));
  Scheduler sched = MakeScheduler({.max_step_tokens = 16, .prefill_chunk = 16}, &kv);
  const SimRequest r{.id = 3, .prompt = Prompt(60, 3), .max_new_tokens = 4};
  const auto result = Simulate(sched, kv, {r});
  EXPECT_EQ(result.outputs.at(3), SoloOutput(r.prompt, 4, false));
  EXPECT_EQ(sched.total_preemptions(), 0);
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
}

TEST(Scheduler, PhasesAndQueries) {
  KvCacheManager kv = MakeKv(RetrievalConfig(16));
  Scheduler sched = MakeScheduler({.max_step_tokens = 8, .prefill_chunk = 8}, &kv);
  EXPECT_TRUE(MustSchedule(sched, kv).plan.steps.empty());  // nothing queued
  const std::vector<int32_t> prompt = Prompt(12, 4);
  ASSERT_TRUE(sched.Add(4, prompt, 2).ok());
  EXPECT_EQ(sched.phase(4), SeqPhase::kWaiting);
  EXPECT_EQ(sched.num_waiting(), 1);
  EXPECT_EQ(sched.num_running(), 0);
  EXPECT_EQ(sched.prompt_length(4), 12);
  EXPECT_EQ(sched.max_new_tokens(4), 2);

  ScheduledStep s = MustSchedule(sched, kv);
  ASSERT_EQ(s.admitted, std::vector<int64_t>{4});
  const SequenceStep* step = StepOf(s, 4);
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->start_pos, 0);
  EXPECT_EQ(step->tokens, std::vector<int32_t>(prompt.begin(), prompt.begin() + 8));
  EXPECT_FALSE(step->is_decode);
  EXPECT_EQ(step->logits, LogitsWanted::kNone);
  EXPECT_EQ(sched.phase(4), SeqPhase::kPrefill);
  EXPECT_EQ(sched.cached_length(4), 8);
  EXPECT_EQ(sched.num_running(), 1);
  EXPECT_FALSE(sched.awaiting_commit(4));
  EXPECT_EQ(sched.Commit(4, 1).code(), StatusCode::kInvalidArgument);  // no logits in that step

  s = MustSchedule(sched, kv);
  step = StepOf(s, 4);
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->start_pos, 8);
  EXPECT_EQ(step->logits, LogitsWanted::kLast);
  EXPECT_EQ(sched.phase(4), SeqPhase::kDecode);
  EXPECT_TRUE(sched.awaiting_commit(4));
  // Awaiting its token: not scheduled again.
  EXPECT_TRUE(MustSchedule(sched, kv).plan.steps.empty());
  EXPECT_TRUE(sched.Commit(4, 77).ok());
  EXPECT_EQ(sched.Commit(4, 78).code(), StatusCode::kInvalidArgument);  // committed already
  EXPECT_EQ(sched.num_generated(4), 1);
  EXPECT_EQ(sched.tokens(4).back(), 77);
  EXPECT_EQ(sched.Commit(99, 1).code(), StatusCode::kNotFound);

  s = MustSchedule(sched, kv);
  step = StepOf(s, 4);
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->is_decode);
  EXPECT_EQ(step->start_pos, 12);
  EXPECT_EQ(step->tokens, std::vector<int32_t>{77});
  EXPECT_EQ(step->logits, LogitsWanted::kLast);
  EXPECT_TRUE(kv.decoding(4));
  ASSERT_TRUE(sched.Commit(4, 78).ok());
  // max_new_tokens reached: never scheduled again, pages kept until Finish.
  EXPECT_EQ(sched.num_generated(4), 2);
  EXPECT_TRUE(MustSchedule(sched, kv).plan.steps.empty());
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 1);
  ASSERT_TRUE(sched.Finish(4).ok());
  EXPECT_FALSE(sched.Contains(4));
  EXPECT_EQ(sched.Finish(4).code(), StatusCode::kNotFound);
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
  EXPECT_EQ(kv.num_sequences(), 0);
}

// Finish in every phase frees the pages at once; the others run on.
TEST(Scheduler, FinishInEveryPhaseFreesPages) {
  for (const bool streaming : {false, true}) {
    SCOPED_TRACE(streaming ? "streaming" : "retrieval");
    KvCacheManager kv = MakeKv(streaming ? StreamingConfig(64, 64) : RetrievalConfig(64));
    Scheduler sched = MakeScheduler({.max_running = 3, .max_step_tokens = 40, .prefill_chunk = 32}, &kv);
    ASSERT_TRUE(sched.Add(0, Prompt(8, 0), 50).ok());    // decodes soon
    ASSERT_TRUE(sched.Add(1, Prompt(100, 1), 50).ok());  // prefills for a while
    ASSERT_TRUE(sched.Add(2, Prompt(20, 2), 50).ok());
    ASSERT_TRUE(sched.Add(3, Prompt(20, 3), 50).ok());  // waits: max_running
    for (int i = 0; i < 2; ++i) CommitAll(sched, MustSchedule(sched, kv));
    ASSERT_EQ(sched.phase(0), SeqPhase::kDecode);
    ASSERT_EQ(sched.phase(1), SeqPhase::kPrefill);
    ASSERT_EQ(sched.phase(3), SeqPhase::kWaiting);
    const int64_t used = kv.pool(KvPool::kRetrieval).used_pages();

    ASSERT_TRUE(sched.Finish(3).ok());  // waiting: held nothing
    EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), used);
    const PageCounts held1 = kv.PagesHeld(1);
    ASSERT_TRUE(sched.Finish(1).ok());  // prefilling
    EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), used - held1.retrieval);
    ASSERT_TRUE(sched.Finish(0).ok());  // decoding
    EXPECT_TRUE(kv.CheckInvariant().ok());
    EXPECT_TRUE(sched.CheckInvariant().ok());
    EXPECT_EQ(sched.running_ids(), std::vector<int64_t>{2});
    CommitAll(sched, MustSchedule(sched, kv));
    ASSERT_TRUE(sched.Finish(2).ok());
    EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
    EXPECT_EQ(kv.pool(KvPool::kStreaming).used_pages(), 0);
    EXPECT_EQ(sched.num_requests(), 0);
  }
}

// A step loop that schedules before committing (overlapped sampling) can see
// a request preempted while its token is sampled: the token still commits,
// the request waits for it before replaying, and its output is unchanged.
TEST(Scheduler, PreemptedWhileAwaitingCommit) {
  KvCacheManager kv = MakeKv(RetrievalConfig(3));
  Scheduler sched = MakeScheduler({.max_step_tokens = 64, .prefill_chunk = 64}, &kv);
  const std::vector<int32_t> p0 = Prompt(30, 0), p1 = Prompt(14, 1);
  ASSERT_TRUE(sched.Add(0, p0, 6).ok());
  ASSERT_TRUE(sched.Add(1, p1, 5).ok());
  for (int i = 0; i < 2; ++i) CommitAll(sched, MustSchedule(sched, kv));
  // s2: both decode; r0 then reaches 32 tokens and needs the third page.
  ScheduledStep s = MustSchedule(sched, kv);
  ASSERT_NE(StepOf(s, 1), nullptr);
  std::vector<int32_t> t0(sched.tokens(0).begin(), sched.tokens(0).end());
  ASSERT_TRUE(sched.Commit(0, NextToken(t0)).ok());  // r1's token is still being sampled
  s = MustSchedule(sched, kv);
  EXPECT_EQ(s.preempted, std::vector<int64_t>{1});
  EXPECT_EQ(sched.phase(1), SeqPhase::kWaiting);
  EXPECT_TRUE(sched.awaiting_commit(1));
  EXPECT_EQ(sched.total_preemptions(), 1);
  EXPECT_EQ(sched.num_preemptions(1), 1);
  std::vector<int32_t> t1(sched.tokens(1).begin(), sched.tokens(1).end());
  ASSERT_TRUE(sched.Commit(1, NextToken(t1)).ok());
  CommitAll(sched, s);
  for (int i = 0; i < 40 && sched.num_requests() > 0; ++i) {
    s = MustSchedule(sched, kv);
    CommitAll(sched, s);
    for (const int64_t id : {int64_t{0}, int64_t{1}}) {
      if (sched.Contains(id) && sched.num_generated(id) == sched.max_new_tokens(id)) {
        const std::span<const int32_t> all = sched.tokens(id);
        EXPECT_EQ(std::vector<int32_t>(all.begin() + sched.prompt_length(id), all.end()),
                  SoloOutput(id == 0 ? p0 : p1, sched.max_new_tokens(id), false));
        ASSERT_TRUE(sched.Finish(id).ok());
      }
    }
  }
  EXPECT_EQ(sched.num_requests(), 0);
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
}

// A waiting request whose token is not committed yet keeps its place: the
// requests behind it are not admitted before it.
TEST(Scheduler, UncommittedHeadBlocksAdmission) {
  KvCacheManager kv = MakeKv(RetrievalConfig(3));
  Scheduler sched = MakeScheduler({.max_step_tokens = 64, .prefill_chunk = 64}, &kv);
  ASSERT_TRUE(sched.Add(0, Prompt(30, 0), 6).ok());
  ASSERT_TRUE(sched.Add(1, Prompt(14, 1), 5).ok());
  for (int i = 0; i < 2; ++i) CommitAll(sched, MustSchedule(sched, kv));
  ScheduledStep s = MustSchedule(sched, kv);  // r0 decode@32 preempts r1 next time
  std::vector<int32_t> t0(sched.tokens(0).begin(), sched.tokens(0).end());
  ASSERT_TRUE(sched.Commit(0, NextToken(t0)).ok());
  s = MustSchedule(sched, kv);
  ASSERT_EQ(s.preempted, std::vector<int64_t>{1});
  ASSERT_TRUE(sched.Finish(0).ok());  // the whole pool is free now
  ASSERT_TRUE(sched.Add(2, {5}, 1).ok());
  s = MustSchedule(sched, kv);
  EXPECT_TRUE(s.plan.steps.empty());
  std::vector<int32_t> t1(sched.tokens(1).begin(), sched.tokens(1).end());
  ASSERT_TRUE(sched.Commit(1, NextToken(t1)).ok());
  s = MustSchedule(sched, kv);
  EXPECT_EQ(s.admitted, (std::vector<int64_t>{1, 2}));
}

// Someone else took the pages of a request that runs alone: Schedule says so
// instead of preempting the request for itself over and over.
TEST(Scheduler, LoneRequestThatCannotGrowIsAnInternalError) {
  KvCacheManager kv = MakeKv(RetrievalConfig(4));
  Scheduler sched = MakeScheduler({}, &kv);
  ASSERT_TRUE(sched.Add(0, Prompt(16, 0), 8).ok());
  CommitAll(sched, MustSchedule(sched, kv));
  ASSERT_TRUE(kv.AddSequence(100).ok());
  ASSERT_TRUE(kv.Grow(100, 48).ok());
  EXPECT_EQ(sched.Schedule().status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace lserve
