// Scheduler timelines: small simulated runs compared line by line with the
// expected schedule (format in sched_test_util.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sched_test_util.h"

namespace lserve {
namespace {

using schedtest::Join;
using schedtest::MakeKv;
using schedtest::MakeScheduler;
using schedtest::Prompt;
using schedtest::RetrievalConfig;
using schedtest::SimRequest;
using schedtest::Simulate;
using schedtest::SoloOutput;
using schedtest::StreamingConfig;

SimRequest Req(int64_t id, int64_t prompt, int64_t max_new, int64_t arrival = 0) {
  return {.id = id, .prompt = Prompt(prompt, static_cast<int32_t>(id)), .max_new_tokens = max_new,
          .arrival_step = arrival};
}

std::vector<std::string> RunTimeline(const KvCacheConfig& kv_config, const SchedulerConfig& config,
                             const std::vector<SimRequest>& requests) {
  KvCacheManager kv = MakeKv(kv_config);
  Scheduler sched = MakeScheduler(config, &kv);
  const schedtest::SimResult result = Simulate(sched, kv, requests);
  for (const SimRequest& r : requests) {
    EXPECT_EQ(result.outputs.at(r.id), SoloOutput(r.prompt, r.max_new_tokens, false)) << "r" << r.id;
  }
  EXPECT_TRUE(kv.CheckInvariant().ok());
  EXPECT_EQ(kv.pool(KvPool::kRetrieval).used_pages(), 0);
  EXPECT_EQ(kv.pool(KvPool::kStreaming).used_pages(), 0);
  return result.timeline;
}

// The example at the top of scheduler.h.
TEST(SchedulerTimeline, HeaderExample) {
  const auto timeline = RunTimeline(RetrievalConfig(64), {.max_step_tokens = 24, .prefill_chunk = 16},
                            {Req(0, 20, 3), Req(1, 30, 2)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,16) r1 prefill[0,8) | R 2/64\n"
            "s1: r0 prefill[16,20)* r1 prefill[8,24) | R 4/64\n"
            "s2: r0 decode@20* r1 prefill[24,30)* | R 4/64\n"
            "s3: r0 decode@21* r1 decode@30* | R 4/64\n");
}

TEST(SchedulerTimeline, ChunksLimitedByChunkSize) {
  const auto timeline =
      RunTimeline(RetrievalConfig(64), {.max_step_tokens = 40, .prefill_chunk = 32}, {Req(0, 100, 2)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,32) | R 2/64\n"
            "s1: r0 prefill[32,64) | R 4/64\n"
            "s2: r0 prefill[64,96) | R 6/64\n"
            "s3: r0 prefill[96,100)* | R 7/64\n"
            "s4: r0 decode@100* | R 7/64\n");
}

TEST(SchedulerTimeline, ChunksLimitedByStepBudget) {
  const auto timeline =
      RunTimeline(RetrievalConfig(64), {.max_step_tokens = 24, .prefill_chunk = 64}, {Req(0, 50, 1)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,24) | R 2/64\n"
            "s1: r0 prefill[24,48) | R 3/64\n"
            "s2: r0 prefill[48,50)* | R 4/64\n");
}

// A long prompt arrives while another request decodes: its chunks share each
// step with the decode token, which goes first.
TEST(SchedulerTimeline, PrefillMixedWithDecode) {
  const auto timeline = RunTimeline(RetrievalConfig(64), {.max_step_tokens = 16, .prefill_chunk = 32},
                            {Req(0, 8, 5), Req(1, 40, 2, /*arrival=*/2)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,8)* | R 1/64\n"
            "s1: r0 decode@8* | R 1/64\n"
            "s2: r0 decode@9* r1 prefill[0,15) | R 2/64\n"
            "s3: r0 decode@10* r1 prefill[15,30) | R 3/64\n"
            "s4: r0 decode@11* r1 prefill[30,40)* | R 4/64\n"
            "s5: r1 decode@40* | R 3/64\n");
}

// r1 does not fit the free pages; r2 would, but never overtakes it.
TEST(SchedulerTimeline, FcfsWithoutOvertaking) {
  const auto timeline = RunTimeline(RetrievalConfig(8), {.max_step_tokens = 256, .prefill_chunk = 128},
                            {Req(0, 64, 3), Req(1, 80, 4), Req(2, 8, 2)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,64)* | R 4/8\n"
            "s1: r0 decode@64* | R 5/8\n"
            "s2: r0 decode@65* | R 5/8\n"
            "s3: r1 prefill[0,80)* r2 prefill[0,8)* | R 6/8\n"
            "s4: r1 decode@80* r2 decode@8* | R 7/8\n"
            "s5: r1 decode@81* | R 6/8\n"
            "s6: r1 decode@82* | R 6/8\n");
}

TEST(SchedulerTimeline, AdmissionLimitedByMaxRunning) {
  const auto timeline = RunTimeline(RetrievalConfig(64), {.max_running = 2, .max_step_tokens = 64, .prefill_chunk = 64},
                            {Req(0, 8, 2), Req(1, 8, 2), Req(2, 8, 2)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,8)* r1 prefill[0,8)* | R 2/64\n"
            "s1: r0 decode@8* r1 decode@8* | R 2/64\n"
            "s2: r2 prefill[0,8)* | R 1/64\n"
            "s3: r2 decode@8* | R 1/64\n");
}

// More decoding requests than tokens in a step: the oldest go first.
TEST(SchedulerTimeline, DecodesLimitedByStepBudget) {
  const auto timeline = RunTimeline(RetrievalConfig(64), {.max_running = 4, .max_step_tokens = 2, .prefill_chunk = 64},
                            {Req(0, 1, 3), Req(1, 1, 3), Req(2, 1, 3)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,1)* r1 prefill[0,1)* | R 2/64\n"
            "s1: r0 decode@1* r1 decode@1* | R 2/64\n"
            "s2: r0 decode@2* r1 decode@2* | R 2/64\n"
            "s3: r2 prefill[0,1)* | R 1/64\n"
            "s4: r2 decode@1* | R 1/64\n"
            "s5: r2 decode@2* | R 1/64\n");
}

// r0 needs a third page with none free: the newest request, r1, is preempted
// and goes to the front of the queue, before r2 (which has waited for pages
// since step 1). It comes back once the pool holds all its 17 tokens,
// prefills its prompt without logits, replays its three generated tokens
// without logits but the newest, and continues.
TEST(SchedulerTimeline, PreemptsNewestAndReplays) {
  const auto timeline = RunTimeline(RetrievalConfig(3), {.max_step_tokens = 64, .prefill_chunk = 64},
                                    {Req(0, 30, 6), Req(1, 14, 5), Req(2, 8, 2, /*arrival=*/1)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,30)* r1 prefill[0,14)* | R 3/3\n"
            "s1: r0 decode@30* r1 decode@14* | R 3/3\n"
            "s2: r0 decode@31* r1 decode@15* | R 3/3\n"
            "s3: r0 decode@32* preempt r1 | R 3/3\n"
            "s4: r0 decode@33* | R 3/3\n"
            "s5: r0 decode@34* | R 3/3\n"
            "s6: r1 prefill[0,14) r2 prefill[0,8)* | R 2/3\n"
            "s7: r1 decode@14 r2 decode@8* | R 2/3\n"
            "s8: r1 decode@15 | R 1/3\n"
            "s9: r1 decode@16* | R 2/3\n"
            "s10: r1 decode@17* | R 2/3\n");
}

// r1 needs a page while the older r0 is already in the step: r1 preempts
// itself.
TEST(SchedulerTimeline, PreemptsItselfWhenNewest) {
  const auto timeline = RunTimeline(RetrievalConfig(3), {.max_step_tokens = 64, .prefill_chunk = 64},
                            {Req(0, 29, 5), Req(1, 14, 5)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,29)* r1 prefill[0,14)* | R 3/3\n"
            "s1: r0 decode@29* r1 decode@14* | R 3/3\n"
            "s2: r0 decode@30* r1 decode@15* | R 3/3\n"
            "s3: r0 decode@31* preempt r1 | R 2/3\n"
            "s4: r0 decode@32* | R 3/3\n"
            "s5: r1 prefill[0,14) | R 1/3\n"
            "s6: r1 decode@14 | R 1/3\n"
            "s7: r1 decode@15 | R 1/3\n"
            "s8: r1 decode@16* | R 2/3\n"
            "s9: r1 decode@17* | R 2/3\n");
}

// Streaming heads: a prefilling sequence holds the sink page and up to five
// ring pages (pages 6 and 7 reuse ring slots); BeginDecode narrows the ring to
// two pages (those of the last 16 tokens) before the first decode step.
TEST(SchedulerTimeline, StreamingPool) {
  const auto timeline =
      RunTimeline(StreamingConfig(16, 8), {.max_step_tokens = 32, .prefill_chunk = 32}, {Req(0, 120, 3)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,32) | R 2/16 S 2/8\n"
            "s1: r0 prefill[32,64) | R 4/16 S 4/8\n"
            "s2: r0 prefill[64,96) | R 6/16 S 6/8\n"
            "s3: r0 prefill[96,120)* | R 8/16 S 6/8\n"
            "s4: r0 decode@120* | R 8/16 S 3/8\n"
            "s5: r0 decode@121* | R 8/16 S 3/8\n");
}

// The streaming pool limits too: r1's first decode step goes first; r0's
// last chunk then needs two streaming pages with one free, and r1 is in the
// plan already, so r0 (though older) is preempted. It comes back when the
// pool can hold its whole prompt (6 streaming pages), after r1 finished.
TEST(SchedulerTimeline, StreamingPoolPreemption) {
  const auto timeline = RunTimeline(StreamingConfig(64, 8), {.max_step_tokens = 64, .prefill_chunk = 32},
                                    {Req(0, 96, 2), Req(1, 64, 3)});
  EXPECT_EQ(Join(timeline),
            "s0: r0 prefill[0,32) r1 prefill[0,32) | R 4/64 S 4/8\n"
            "s1: r0 prefill[32,64) r1 prefill[32,64)* | R 8/64 S 8/8\n"
            "s2: r1 decode@64* preempt r0 | R 5/64 S 3/8\n"
            "s3: r1 decode@65* | R 5/64 S 3/8\n"
            "s4: r0 prefill[0,32) | R 2/64 S 2/8\n"
            "s5: r0 prefill[32,64) | R 4/64 S 4/8\n"
            "s6: r0 prefill[64,96)* | R 6/64 S 6/8\n"
            "s7: r0 decode@96* | R 7/64 S 3/8\n");
}

}  // namespace
}  // namespace lserve
