// The engine thread: the step loop schedule -> forward -> sample ->
// detokenize -> stream, with continuous batching (scheduler/scheduler.h).
//
// One iteration:
//   1. under the mailbox lock: wait while there is nothing to do (no busy
//      loop), take the new requests into the scheduler (so that the queue
//      count Submit checks never misses one in transit) and the cancelled ids;
//   2. cancelled requests leave the scheduler (pages freed), wherever they are;
//   3. one step: Schedule(), Forward(plan), then for each logits row (only
//      steps that end at a request's newest token have one: replayed steps
//      after a preemption want none) sample, check stops, detokenize, push
//      one event, and Commit the token or Finish the request.
// Faults: a request's own fault (NaN logits: the Sampler's Internal error)
// ends that request only; a failed forward ends the requests of that step;
// the loop keeps serving in both cases.
#include <utility>

#include "runtime/engine_impl.h"

namespace lserve {
namespace {

FinishKind KindOf(FinishReason reason) {
  return reason == FinishReason::kStop ? FinishKind::kStop : FinishKind::kLength;
}

}  // namespace

void EngineImpl::Run() {
  Mailbox& mb = *mailbox_;
  bool stepped = false;  // the last iteration ran a step: the next may run one too
  while (true) {
    std::deque<PendingRequest> arrivals;
    std::vector<int64_t> cancelled;
    bool exit = false;
    {
      std::unique_lock lock(mb.mu);
      mb.wake.wait(lock, [&] {
        return mb.abort || !mb.inbox.empty() || !mb.cancelled.empty() || stepped ||
               (mb.draining && scheduler_->num_requests() == 0);
      });
      arrivals.swap(mb.inbox);
      cancelled.swap(mb.cancelled);
      if (!mb.abort) {
        TakeArrivals(arrivals);
        mb.scheduler_waiting = scheduler_->num_waiting();
      }
      exit = mb.abort || (mb.draining && scheduler_->num_requests() == 0);
    }
    if (exit) {
      AbortAll(arrivals);
      PublishStats();
      {
        std::lock_guard lock(mb.mu);
        mb.exited = true;
      }
      mb.stopped.notify_all();
      return;
    }
    ApplyCancellations(cancelled);
    stepped = Step();
    PublishStats();
  }
}

void EngineImpl::TakeArrivals(std::deque<PendingRequest>& arrivals) {
  while (!arrivals.empty()) {
    PendingRequest p = std::move(arrivals.front());
    arrivals.pop_front();
    const int64_t prompt_tokens = static_cast<int64_t>(p.prompt.size());
    StopChecker stop(p.params, eos_ids_);
    const Status added = scheduler_->Add(p.id, std::move(p.prompt), p.params.max_tokens);
    active_.emplace(p.id, ActiveRequest{p.channel, std::move(p.sampler), std::move(stop),
                                        IncrementalDecoder(*tokenizer_, p.skip_special_tokens), p.params.logprobs,
                                        prompt_tokens, 0});
    // Submit checked what Add checks; a refusal here is a broken invariant.
    if (!added.ok()) EndRequest(p.id, FinishKind::kError, added.ToString());
  }
}

void EngineImpl::ApplyCancellations(const std::vector<int64_t>& ids) {
  for (const int64_t id : ids) {
    if (active_.count(id) != 0) EndRequest(id, FinishKind::kCancelled, "");
  }
}

bool EngineImpl::Step() {
  if (scheduler_->num_requests() == 0) return false;
  Result<ScheduledStep> scheduled = scheduler_->Schedule();
  if (!scheduled.ok()) {
    // A broken scheduler invariant: end everything rather than spin.
    std::vector<int64_t> ids;
    for (const auto& [id, request] : active_) ids.push_back(id);
    for (const int64_t id : ids) EndRequest(id, FinishKind::kError, scheduled.status().ToString());
    return false;
  }
  {
    // Admissions left the queue: Submit's count sees it while the step runs.
    std::lock_guard lock(mailbox_->mu);
    mailbox_->scheduler_waiting = scheduler_->num_waiting();
  }
  const BatchPlan& plan = scheduled->plan;
  if (plan.steps.empty()) return false;

  ForwardOutput& out = forward_out_;
  Status status = model_->Forward(plan, *kv_, &out);
  ForwardHook hook;
  {
    std::lock_guard lock(mailbox_->mu);
    hook = mailbox_->forward_hook;
  }
  if (status.ok() && hook) status = hook(plan, out);
  ++steps_;
  if (!status.ok()) {
    for (const SequenceStep& step : plan.steps) {
      EndRequest(step.seq_id, FinishKind::kError, "the forward step failed: " + status.ToString());
    }
    return true;
  }
  sparsity_ += out.sparsity;
  for (size_t r = 0; r < out.rows.size(); ++r) {
    std::span<float> logits(out.logits.data() + r * static_cast<size_t>(out.vocab), static_cast<size_t>(out.vocab));
    SampleRow(out.rows[r].seq_id, logits);
  }
  // Every step that wanted logits got a row; one left waiting would never
  // be scheduled again.
  for (const SequenceStep& step : plan.steps) {
    if (step.logits != LogitsWanted::kNone && scheduler_->Contains(step.seq_id) &&
        scheduler_->awaiting_commit(step.seq_id)) {
      EndRequest(step.seq_id, FinishKind::kError, "the forward step returned no logits for the request");
    }
  }
  return true;
}

void EngineImpl::SampleRow(int64_t seq_id, std::span<float> logits) {
  auto it = active_.find(seq_id);
  if (it == active_.end() || !scheduler_->Contains(seq_id) || !scheduler_->awaiting_commit(seq_id)) return;
  ActiveRequest& request = it->second;
  Result<SampledToken> sampled = request.sampler.Sample(logits);
  if (!sampled.ok()) {
    EndRequest(seq_id, FinishKind::kError, sampled.status().message());
    return;
  }
  const int32_t token = sampled->token_id;
  StreamEvent event;
  event.token_ids.push_back(token);
  if (request.logprobs) {
    event.logprobs.push_back(sampled->logprob);
    std::vector<StreamTopLogprob> top;
    top.reserve(sampled->top_logprobs.size());
    for (const TokenLogprob& t : sampled->top_logprobs) top.push_back(StreamTopLogprob{t.token_id, t.logprob});
    event.top_logprobs.push_back(std::move(top));
  }
  if (request.completion_tokens == 0) prompt_tokens_ += request.prompt_tokens;
  ++request.completion_tokens;
  ++generated_tokens_;
  StopUpdate update = request.stop.Step(token, request.detokenizer);
  event.text = std::move(update.text);
  if (update.finished()) {
    EndRequest(seq_id, KindOf(*update.finish_reason), "", std::move(event));
    return;
  }
  const Status committed = scheduler_->Commit(seq_id, token);
  if (!committed.ok()) {
    EndRequest(seq_id, FinishKind::kError, committed.ToString(), std::move(event));
    return;
  }
  request.channel->Push(std::move(event));
}

void EngineImpl::EndRequest(int64_t id, FinishKind kind, std::string error, StreamEvent event) {
  // Finish frees the pages at once; NotFound (already gone) is harmless.
  if (scheduler_->Contains(id)) (void)scheduler_->Finish(id);
  auto it = active_.find(id);
  if (it == active_.end()) return;
  event.finish = kind;
  event.error = std::move(error);
  event.prompt_tokens = it->second.prompt_tokens;
  event.completion_tokens = it->second.completion_tokens;
  it->second.channel->Push(std::move(event));
  active_.erase(it);
}

void EngineImpl::AbortAll(std::deque<PendingRequest>& arrivals) {
  for (PendingRequest& p : arrivals) {
    StreamEvent event;
    event.finish = FinishKind::kAborted;
    event.prompt_tokens = static_cast<int64_t>(p.prompt.size());
    p.channel->Push(std::move(event));
  }
  arrivals.clear();
  std::vector<int64_t> ids;
  for (const auto& [id, request] : active_) ids.push_back(id);
  for (const int64_t id : ids) EndRequest(id, FinishKind::kAborted, "");
}

void EngineImpl::PublishStats() {
  EngineStats s;
  s.running = scheduler_->num_running();
  const PageAllocator& retrieval = kv_->pool(KvPool::kRetrieval);
  const PageAllocator& streaming = kv_->pool(KvPool::kStreaming);
  s.kv_pages_used_retrieval = retrieval.used_pages();
  s.kv_pages_total_retrieval = retrieval.total_pages();
  s.kv_pages_used_streaming = streaming.used_pages();
  s.kv_pages_total_streaming = streaming.total_pages();
  s.preemptions = scheduler_->total_preemptions();
  s.steps = steps_;
  s.prompt_tokens = prompt_tokens_;
  s.generated_tokens = generated_tokens_;
  s.prefill_blocks_visited = sparsity_.prefill_blocks_visited;
  s.prefill_blocks_dense = sparsity_.prefill_blocks_dense;
  s.decode_pages_read = sparsity_.decode_pages_read;
  s.decode_pages_dense = sparsity_.decode_pages_dense;
  {
    std::lock_guard lock(stats_mu_);
    stats_ = s;
  }
  std::lock_guard lock(mailbox_->mu);
  mailbox_->scheduler_waiting = scheduler_->num_waiting();
}

}  // namespace lserve
