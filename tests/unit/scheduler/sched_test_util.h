// A simulated engine for the scheduler tests: a fake model whose next token is
// a hash of every token it has cached for the sequence, a step loop that
// drives Scheduler + KvCacheManager the way the runtime does (schedule, run,
// commit, finish), checks every step, and renders each step as one line:
//
//   s3: r1 prefill[0,16) r0 decode@40* preempt r2 | R 12/64 S 3/10
//
// r<id> prefill[a,b) / decode@pos: the plan's steps in order, '*' when the
// step wants logits; preempt r<id>: preempted while building the step;
// R / S: retrieval / streaming pages used of the pool's total after the step
// was scheduled (S only when the model has streaming heads).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvcache/kv_cache.h"
#include "kvcache/paged_batch.h"
#include "scheduler/scheduler.h"

namespace lserve::schedtest {

// One layer of two KV heads, page size 16 unless told, all heads retrieval.
inline KvCacheConfig RetrievalConfig(int64_t retrieval_pages, int64_t page_size = 16) {
  KvCacheConfig c{.page_size = page_size,
                  .logical_page_size = 16,
                  .num_layers = 1,
                  .num_kv_heads = 2,
                  .head_dim = 4,
                  .num_retrieval_pages = retrieval_pages};
  c.SetAllHeadsRetrieval();
  return c;
}

// Two layers of two KV heads: layer 0 = {retrieval, streaming}, layer 1 =
// {streaming, streaming}. Page size 16; windows: prefill sink 16 local 32,
// decode sink 16 local 16; prefill chunks of at most `prefill_chunk` tokens.
// S = 1; with chunks of 32 the prefill ring has ceil(63 / 16) + 1 = 5 pages;
// the decode ring has 2.
inline KvCacheConfig StreamingConfig(int64_t retrieval_pages, int64_t streaming_pages, int64_t prefill_chunk = 32) {
  KvCacheConfig c{.page_size = 16,
                  .logical_page_size = 16,
                  .num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 4,
                  .num_retrieval_pages = retrieval_pages,
                  .num_streaming_pages = streaming_pages,
                  .prefill_sink = 16,
                  .prefill_local = 32,
                  .decode_sink = 16,
                  .decode_local = 16,
                  .prefill_chunk = prefill_chunk};
  EXPECT_TRUE(c.SetHeadRoles({{1, 0}, {0, 0}}).ok());
  return c;
}

inline KvCacheManager MakeKv(const KvCacheConfig& config) {
  Result<KvCacheManager> kv = KvCacheManager::Create(config);
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  return std::move(kv).value();
}

inline Scheduler MakeScheduler(const SchedulerConfig& config, KvCacheManager* kv) {
  Result<Scheduler> s = Scheduler::Create(config, kv);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

// The fake model: the next token is a hash of the whole prefix it has seen.
inline int32_t NextToken(const std::vector<int32_t>& prefix) {
  uint64_t h = 1469598103934665603ull;
  for (const int32_t t : prefix) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  return static_cast<int32_t>((h >> 17) % 1000);
}
inline bool IsStopToken(int32_t t) { return t % 61 == 0; }

inline std::vector<int32_t> Prompt(int64_t n, int32_t seed) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<int32_t>((int64_t{seed} * 7919 + i * 31) % 1000);
  return p;
}

// What the request generates when run alone, computed without any scheduler.
inline std::vector<int32_t> SoloOutput(const std::vector<int32_t>& prompt, int64_t max_new_tokens, bool stop_tokens) {
  std::vector<int32_t> seq = prompt;
  std::vector<int32_t> out;
  while (static_cast<int64_t>(out.size()) < max_new_tokens) {
    const int32_t t = NextToken(seq);
    seq.push_back(t);
    out.push_back(t);
    if (stop_tokens && IsStopToken(t)) break;
  }
  return out;
}

struct SimRequest {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 1;
  int64_t arrival_step = 0;  // Add()ed before scheduling this step
  int64_t cancel_step = -1;  // Finish()ed before scheduling this step, if still live
};

struct SimOptions {
  bool stop_tokens = false;  // finish on IsStopToken as well as on length
  int64_t max_steps = 10000;
  bool render = true;
};

struct SimResult {
  std::vector<std::string> timeline;
  std::map<int64_t, std::vector<int32_t>> outputs;  // generated tokens of requests finished by stop/length
  std::map<int64_t, int64_t> finish_step;
  std::map<int64_t, Status> refused;  // Add() errors
  std::map<int64_t, int64_t> preemptions;  // per request, at its finish
  std::map<int64_t, SeqPhase> cancelled;    // phase at cancellation
  std::vector<int64_t> first_admissions;    // ids in the order of their first admission
  int64_t steps = 0;
  int64_t max_tokens_in_step = 0;
};

inline std::string RenderStep(int64_t step_index, const ScheduledStep& step, const KvCacheManager& kv) {
  std::string line = "s";
  line += std::to_string(step_index);
  line += ":";
  if (step.plan.steps.empty()) line += " idle";
  for (const SequenceStep& s : step.plan.steps) {
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    line += " r";
    line += std::to_string(s.seq_id);
    if (s.is_decode) {
      line += " decode@";
      line += std::to_string(s.start_pos);
    } else {
      line += " prefill[";
      line += std::to_string(s.start_pos);
      line += ",";
      line += std::to_string(end);
      line += ")";
    }
    if (s.logits == LogitsWanted::kLast) line += "*";
  }
  for (const int64_t id : step.preempted) {
    line += " preempt r";
    line += std::to_string(id);
  }
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    if (p == KvPool::kStreaming && !kv.config().has_streaming_heads()) continue;
    line += p == KvPool::kRetrieval ? " | R " : " S ";
    line += std::to_string(kv.pool(p).used_pages());
    line += "/";
    line += std::to_string(kv.pool(p).total_pages());
  }
  return line;
}

// Runs the requests to completion (or cancellation) with every check of a
// step: the plan is valid for the KV cache, within the budget and the running
// limit; both invariants hold; the fake model's cache of each sequence starts
// exactly where the step starts and holds the scheduler's tokens.
inline SimResult Simulate(Scheduler& sched, KvCacheManager& kv, const std::vector<SimRequest>& requests,
                          const SimOptions& options = {}) {
  SimResult result;
  std::unordered_map<int64_t, std::vector<int32_t>> model_cache;  // tokens whose K/V the fake model holds
  size_t arrived = 0;
  std::vector<const SimRequest*> by_arrival;
  for (const SimRequest& r : requests) by_arrival.push_back(&r);
  std::stable_sort(by_arrival.begin(), by_arrival.end(),
                   [](const SimRequest* a, const SimRequest* b) { return a->arrival_step < b->arrival_step; });
  std::unordered_map<int64_t, const SimRequest*> live;
  for (int64_t s = 0; s < options.max_steps; ++s) {
    for (; arrived < by_arrival.size() && by_arrival[arrived]->arrival_step <= s; ++arrived) {
      const SimRequest& r = *by_arrival[arrived];
      const Status added = sched.Add(r.id, r.prompt, r.max_new_tokens);
      if (added.ok()) {
        live[r.id] = &r;
      } else {
        result.refused.emplace(r.id, added);
      }
    }
    for (const SimRequest& r : requests) {
      if (r.cancel_step == s && live.count(r.id)) {
        result.cancelled[r.id] = sched.phase(r.id);
        const Status finished = sched.Finish(r.id);
        EXPECT_TRUE(finished.ok()) << finished.ToString();
        live.erase(r.id);
        model_cache.erase(r.id);
      }
    }
    if (live.empty() && arrived == by_arrival.size()) break;
    Result<ScheduledStep> step = sched.Schedule();
    if (!step.ok()) {
      ADD_FAILURE() << "step " << s << ": " << step.status().ToString();
      return result;
    }
    result.steps = s + 1;
    const Status valid = ValidateBatchPlan(step->plan, kv);
    const Status kv_ok = kv.CheckInvariant();
    const Status sched_ok = sched.CheckInvariant();
    if (!valid.ok() || !kv_ok.ok() || !sched_ok.ok()) {
      ADD_FAILURE() << "step " << s << ": " << valid.ToString() << " / " << kv_ok.ToString() << " / "
                    << sched_ok.ToString() << "\n  " << RenderStep(s, *step, kv);
      return result;
    }
    EXPECT_LE(step->num_tokens(), sched.config().max_step_tokens);
    EXPECT_LE(sched.num_running(), sched.config().max_running);
    result.max_tokens_in_step = std::max(result.max_tokens_in_step, step->num_tokens());
    if (step->plan.steps.empty() && !live.empty()) {
      ADD_FAILURE() << "step " << s << ": nothing scheduled while " << live.size() << " requests are live";
      return result;
    }
    if (options.render) result.timeline.push_back(RenderStep(s, *step, kv));
    for (const int64_t id : step->preempted) model_cache.erase(id);
    for (const int64_t id : step->admitted) {
      if (sched.num_preemptions(id) == 0) result.first_admissions.push_back(id);
    }
    for (const SequenceStep& st : step->plan.steps) {
      std::vector<int32_t>& cached = model_cache[st.seq_id];
      if (static_cast<int64_t>(cached.size()) != st.start_pos) {
        ADD_FAILURE() << "step " << s << ": r" << st.seq_id << " starts at " << st.start_pos << ", the model holds "
                      << cached.size() << " tokens";
        return result;
      }
      cached.insert(cached.end(), st.tokens.begin(), st.tokens.end());
      const std::span<const int32_t> known = sched.tokens(st.seq_id);
      if (!std::equal(cached.begin(), cached.end(), known.begin(), known.begin() + static_cast<int64_t>(cached.size()))) {
        ADD_FAILURE() << "step " << s << ": r" << st.seq_id << " was fed tokens that are not its own";
        return result;
      }
      if (st.logits != LogitsWanted::kLast) continue;
      const int32_t token = NextToken(cached);
      EXPECT_TRUE(sched.Commit(st.seq_id, token).ok());
      const SimRequest& r = *live.at(st.seq_id);
      if ((options.stop_tokens && IsStopToken(token)) || sched.num_generated(r.id) == r.max_new_tokens) {
        const std::span<const int32_t> all = sched.tokens(r.id);
        result.outputs[r.id].assign(all.begin() + static_cast<int64_t>(r.prompt.size()), all.end());
        result.finish_step[r.id] = s;
        result.preemptions[r.id] = sched.num_preemptions(r.id);
        EXPECT_TRUE(sched.Finish(r.id).ok());
        live.erase(r.id);
        model_cache.erase(r.id);
      }
    }
  }
  EXPECT_TRUE(live.empty()) << live.size() << " requests still live after " << options.max_steps << " steps";
  return result;
}

inline std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

}  // namespace lserve::schedtest
