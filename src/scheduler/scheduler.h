// Scheduler: continuous batching over the paged KV cache (DESIGN.md §2).
// Pure logic: it decides what each engine step computes and keeps the
// KvCacheManager's page tables in step with that decision; it never sees a
// model, a backend or a thread.
//
// Policy (in the manner of vLLM v1: a request has tokens and a cached length,
// and each step moves the cached length forward):
//
//  * Tokens and cached length. A request's tokens are its prompt followed by
//    the tokens committed so far. Its cached length c counts the tokens whose
//    K/V the model has computed, including the tokens of the step Schedule()
//    just returned (the engine runs that step before the next Schedule()).
//    Invariant: c == kv->length(id) while the request holds pages, 0 while it
//    waits.
//  * Prefill (c < prompt length): a chunk tokens[c, c + n) at start_pos c with
//    n = min(prefill_chunk, tokens left in the step's budget, prompt length - c).
//  * Decode (c >= prompt length): one token tokens[c] at start_pos c, is_decode;
//    kv->BeginDecode before the request's first decode step.
//  * Logits. A step wants LogitsWanted::kLast iff it ends at the newest token
//    (c + n == tokens.size()): its logits give the next token, which the engine
//    samples and hands back with Commit(). Every other step wants kNone: the
//    engine must not sample for it. A request whose step wants logits is
//    awaiting commit and is not scheduled again until Commit() or Finish().
//    A request that has generated max_new_tokens tokens is never scheduled
//    again; it keeps its pages until Finish().
//  * Order within Schedule(), all under max_step_tokens tokens in total:
//      1. running decoding requests, one token each, in admission order;
//      2. running prefilling requests, one chunk each, in admission order;
//      3. waiting requests, first come first served, while fewer than
//         max_running requests hold pages and tokens are left: a request is
//         admitted (kv->AddSequence) only if the pool can hold its first chunk
//         now; otherwise it stays at the head of the queue and admission stops
//         for this step (strict FCFS: no later request overtakes it).
//         Admission never preempts, and no request is admitted in a step that
//         preempted one (the freed pages go to the running requests first).
//  * Preemption by recompute. When the pool cannot grow a running request R
//    for its step, the most recently admitted running request that is not in
//    this step's plan (possibly R itself) is preempted: its pages are freed,
//    its cached length drops to 0, and it goes to the FRONT of the waiting
//    queue keeping its tokens. Repeat until R fits or R itself was preempted.
//    It is re-admitted (in FCFS order, as above) only when the pool can hold
//    all its tokens (prompt + generated; it yields nothing new before it has
//    recomputed them), so that it is not preempted again halfway.
//    Re-admitted, it prefills its prompt again (the chunk that reaches the
//    prompt's end wants no logits when tokens were generated already), then
//    replays its generated tokens as one decode step each with kNone until it
//    reaches its newest token, whose step wants kLast: the model computes the
//    same steps it computed before, so the outputs stay the same.
//  * Progress. A request is accepted only if it fits the pools alone
//    (kv->CheckCanEverFit(prompt + max_new_tokens)). The oldest running
//    request is preempted only by its own growth, when every other running
//    request is in the step already, and never when it runs alone (that
//    would be an Internal error: someone else uses the KV cache). A
//    preempted request at the head of the queue blocks later admissions, so
//    the running requests drain (each is bounded by max_new_tokens; the
//    engine Finish()es it) until the pool can hold it; then it runs.
//
// Timeline example (page size 16, max_step_tokens 24, prefill_chunk 16,
// r0: prompt 20, r1: prompt 30; '*' = the step wants logits):
//   s0: r0 prefill[0,16) r1 prefill[0,8)
//   s1: r0 prefill[16,20)* r1 prefill[8,24)
//   s2: r0 decode@20* r1 prefill[24,30)*
//   s3: r0 decode@21* r1 decode@30*
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "kvcache/batch_plan.h"
#include "kvcache/kv_cache.h"

namespace lserve {

struct SchedulerConfig {
  int64_t max_running = 64;        // requests holding pages at once (prefilling or decoding)
  int64_t max_step_tokens = 2048;  // tokens of all steps of one BatchPlan (decode = 1 each)
  int64_t prefill_chunk = 512;     // most prompt tokens of one request in one step

  // InvalidArgument unless every field is >= 1.
  Status Validate() const;
};

enum class SeqPhase : uint8_t { kWaiting, kPrefill, kDecode };
const char* SeqPhaseName(SeqPhase phase);  // "waiting", "prefill", "decode"

struct ScheduledStep {
  BatchPlan plan;                  // empty steps = nothing to run
  std::vector<int64_t> preempted;  // ids preempted while building this step (pages freed, back to waiting)
  std::vector<int64_t> admitted;   // ids that got their first pages in this step (re-admissions too)

  int64_t num_tokens() const;  // tokens of all steps of the plan
};

class Scheduler {
 public:
  // InvalidArgument for an invalid config, a null `kv`, a KV cache that
  // already holds sequences, or (when the model has streaming heads) a
  // prefill_chunk longer than the KV cache's, for which the streaming rings
  // are sized. `kv` outlives the scheduler, and the scheduler is
  // its only user from now on.
  static Result<Scheduler> Create(const SchedulerConfig& config, KvCacheManager* kv);

  // Queues a request behind every earlier one. InvalidArgument for an empty
  // prompt, max_new_tokens < 1, or an id that is live (waiting or running);
  // kv->CheckCanEverFit(prompt + max_new_tokens)'s error (ResourceExhausted,
  // OutOfRange) when the request could never be served. A refused request
  // changes nothing.
  Status Add(int64_t id, std::vector<int32_t> prompt, int64_t max_new_tokens);

  // Builds the next step (policy above) and grows the KV cache for it: on
  // return, kv->length(id) == start_pos + tokens.size() for every step and
  // decode steps' sequences have begun decoding, so
  // ValidateBatchPlan(plan, *kv) holds. An empty plan means nothing can run
  // now (nothing live, or everything awaits Commit/Finish). Errors are
  // Internal only (a broken invariant).
  Result<ScheduledStep> Schedule();

  // Appends the token sampled from the logits of `id`'s last step. NotFound
  // for an unknown id; InvalidArgument when `id` is not awaiting commit (its
  // last step wanted no logits, or it was committed already).
  Status Commit(int64_t id, int32_t token);

  // Removes a request in any phase (finished by a stop condition or by
  // length, or cancelled while waiting or running) and frees its pages at
  // once. NotFound for an unknown id.
  Status Finish(int64_t id);

  // --- Queries. Precondition for the per-request ones: Contains(id). ---
  const SchedulerConfig& config() const { return config_; }
  bool Contains(int64_t id) const { return requests_.count(id) != 0; }
  // kWaiting without pages; else kPrefill while cached_length < prompt
  // length, kDecode after (cached_length counts the step just returned).
  SeqPhase phase(int64_t id) const;
  // Prompt followed by the committed tokens. Valid until the next Commit,
  // Finish or Add.
  std::span<const int32_t> tokens(int64_t id) const { return Find(id).tokens; }
  int64_t prompt_length(int64_t id) const { return Find(id).prompt_length; }
  int64_t num_generated(int64_t id) const;
  int64_t max_new_tokens(int64_t id) const { return Find(id).max_new_tokens; }
  // Tokens whose K/V are computed or being computed in the last step (0 while waiting).
  int64_t cached_length(int64_t id) const { return Find(id).cached; }
  bool awaiting_commit(int64_t id) const { return Find(id).awaiting_commit; }
  int64_t num_preemptions(int64_t id) const { return Find(id).num_preemptions; }

  int64_t num_requests() const { return static_cast<int64_t>(requests_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t total_preemptions() const { return total_preemptions_; }
  // Ids in queue order (waiting) and admission order (running).
  const std::deque<int64_t>& waiting_ids() const { return waiting_; }
  const std::vector<int64_t>& running_ids() const { return running_; }

  // The scheduler's own bookkeeping agrees with the KV cache: every running
  // request holds a sequence of its cached length, no other sequence exists,
  // waiting and running partition the requests. Internal error otherwise. O(requests).
  Status CheckInvariant() const;

 private:
  struct RequestState {
    std::vector<int32_t> tokens;  // prompt + committed tokens
    int64_t prompt_length = 0;
    int64_t max_new_tokens = 0;
    int64_t cached = 0;  // == kv length while running, 0 while waiting
    bool running = false;
    bool awaiting_commit = false;
    int64_t num_preemptions = 0;

    int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - prompt_length; }
    // Whether a step can be scheduled for it at all (besides pages and budget).
    bool wants_step() const { return !awaiting_commit && num_generated() < max_new_tokens; }
  };

  enum class Placement { kPlaced, kPreemptedItself };

  Scheduler(const SchedulerConfig& config, KvCacheManager* kv) : config_(config), kv_(kv) {}
  const RequestState& Find(int64_t id) const;

  // Grows `id` to cached + n tokens, preempting as the policy says, and appends
  // its step to `out`.
  Result<Placement> Place(int64_t id, int64_t n, ScheduledStep& out);
  // Appends the step for tokens [cached, cached + n) (pages already grown).
  void AppendStep(int64_t id, RequestState& req, int64_t n, ScheduledStep& out);
  Status Preempt(int64_t id, ScheduledStep& out);
  // Admits waiting requests in FCFS order while the limits allow.
  Status Admit(int64_t& budget, ScheduledStep& out);

  SchedulerConfig config_;
  KvCacheManager* kv_;
  std::unordered_map<int64_t, RequestState> requests_;
  std::deque<int64_t> waiting_;     // FCFS; preempted requests go to the front
  std::vector<int64_t> running_;    // holding pages, in admission order
  std::unordered_set<int64_t> in_plan_;  // ids placed in the step being built
  int64_t total_preemptions_ = 0;
};

}  // namespace lserve
