#include "scheduler/scheduler.h"

#include <algorithm>
#include <string>

#include "core/check.h"

namespace lserve {

namespace {

std::string RequestName(int64_t id) { return "request " + std::to_string(id); }

}  // namespace

Status SchedulerConfig::Validate() const {
  auto at_least_one = [](const char* name, int64_t v) -> Status {
    if (v >= 1) return Status::Ok();
    return InvalidArgument(std::string("scheduler ") + name + " must be >= 1, got " + std::to_string(v));
  };
  LSERVE_RETURN_IF_ERROR(at_least_one("max_running", max_running));
  LSERVE_RETURN_IF_ERROR(at_least_one("max_step_tokens", max_step_tokens));
  LSERVE_RETURN_IF_ERROR(at_least_one("prefill_chunk", prefill_chunk));
  return Status::Ok();
}

const char* SeqPhaseName(SeqPhase phase) {
  switch (phase) {
    case SeqPhase::kWaiting:
      return "waiting";
    case SeqPhase::kPrefill:
      return "prefill";
    case SeqPhase::kDecode:
      return "decode";
  }
  return "unknown";
}

int64_t ScheduledStep::num_tokens() const {
  int64_t n = 0;
  for (const SequenceStep& step : plan.steps) n += static_cast<int64_t>(step.tokens.size());
  return n;
}

Result<Scheduler> Scheduler::Create(const SchedulerConfig& config, KvCacheManager* kv) {
  LSERVE_RETURN_IF_ERROR(config.Validate());
  if (kv == nullptr) return InvalidArgument("the scheduler needs a KV cache");
  if (kv->num_sequences() != 0) {
    return InvalidArgument("the scheduler must be the only user of its KV cache, which holds " +
                           std::to_string(kv->num_sequences()) + " sequences already");
  }
  if (kv->config().has_streaming_heads() && config.prefill_chunk > kv->config().prefill_chunk) {
    return InvalidArgument("scheduler prefill_chunk " + std::to_string(config.prefill_chunk) +
                           " exceeds the KV cache's prefill_chunk " + std::to_string(kv->config().prefill_chunk) +
                           ", for which its streaming rings are sized");
  }
  return Scheduler(config, kv);
}

const Scheduler::RequestState& Scheduler::Find(int64_t id) const {
  auto it = requests_.find(id);
  LSERVE_CHECK(it != requests_.end());  // precondition: Contains(id)
  return it->second;
}

SeqPhase Scheduler::phase(int64_t id) const {
  const RequestState& req = Find(id);
  if (!req.running) return SeqPhase::kWaiting;
  return req.cached < req.prompt_length ? SeqPhase::kPrefill : SeqPhase::kDecode;
}

int64_t Scheduler::num_generated(int64_t id) const { return Find(id).num_generated(); }

Status Scheduler::Add(int64_t id, std::vector<int32_t> prompt, int64_t max_new_tokens) {
  if (prompt.empty()) return InvalidArgument(RequestName(id) + " has an empty prompt");
  if (max_new_tokens < 1) {
    return InvalidArgument(RequestName(id) + ": max_new_tokens must be >= 1, got " + std::to_string(max_new_tokens));
  }
  if (Contains(id)) return InvalidArgument(RequestName(id) + " is already queued or running");
  // Saturate so that a huge max_new_tokens gets CheckCanEverFit's OutOfRange
  // instead of overflowing.
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  const int64_t limit = KvCacheManager::kMaxSequenceTokens;
  const int64_t total =
      (prompt_length > limit || max_new_tokens > limit - prompt_length) ? limit + 1 : prompt_length + max_new_tokens;
  Status fits = kv_->CheckCanEverFit(total);
  if (!fits.ok()) return fits.Annotate(RequestName(id));
  RequestState req;
  req.tokens = std::move(prompt);
  req.prompt_length = prompt_length;
  req.max_new_tokens = max_new_tokens;
  requests_.emplace(id, std::move(req));
  waiting_.push_back(id);
  return Status::Ok();
}

Status Scheduler::Commit(int64_t id, int32_t token) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return NotFound(RequestName(id) + " is not queued or running");
  RequestState& req = it->second;
  if (!req.awaiting_commit) {
    return InvalidArgument(RequestName(id) + " is not awaiting a token: its last step wanted no logits");
  }
  req.tokens.push_back(token);
  req.awaiting_commit = false;
  return Status::Ok();
}

Status Scheduler::Finish(int64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return NotFound(RequestName(id) + " is not queued or running");
  if (it->second.running) {
    LSERVE_RETURN_IF_ERROR(kv_->Free(id));
    running_.erase(std::find(running_.begin(), running_.end(), id));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
  }
  requests_.erase(it);
  return Status::Ok();
}

Status Scheduler::Preempt(int64_t id, ScheduledStep& out) {
  RequestState& req = requests_.at(id);
  LSERVE_RETURN_IF_ERROR(kv_->Free(id));
  running_.erase(std::find(running_.begin(), running_.end(), id));
  waiting_.push_front(id);
  req.running = false;
  req.cached = 0;
  ++req.num_preemptions;
  ++total_preemptions_;
  out.preempted.push_back(id);
  return Status::Ok();
}

void Scheduler::AppendStep(int64_t id, RequestState& req, int64_t n, ScheduledStep& out) {
  const int64_t start = req.cached;
  const int64_t end = start + n;
  SequenceStep step;
  step.seq_id = id;
  step.start_pos = start;
  step.tokens.assign(req.tokens.begin() + start, req.tokens.begin() + end);
  step.is_decode = start >= req.prompt_length;
  // Only the step that ends at the newest token yields a token to sample; a
  // step that recomputes tokens known already (after a preemption) must not.
  step.logits = end == static_cast<int64_t>(req.tokens.size()) ? LogitsWanted::kLast : LogitsWanted::kNone;
  req.awaiting_commit = step.logits == LogitsWanted::kLast;
  req.cached = end;
  in_plan_.insert(id);
  out.plan.steps.push_back(std::move(step));
}

Result<Scheduler::Placement> Scheduler::Place(int64_t id, int64_t n, ScheduledStep& out) {
  RequestState& req = requests_.at(id);
  const int64_t new_len = req.cached + n;
  if (req.cached >= req.prompt_length) LSERVE_RETURN_IF_ERROR(kv_->BeginDecode(id));
  while (!kv_->CanGrow(id, new_len)) {
    // The most recently admitted running request not yet in the plan; `id`
    // itself is a candidate, so one exists.
    auto victim = std::find_if(running_.rbegin(), running_.rend(),
                               [&](int64_t other) { return in_plan_.count(other) == 0; });
    LSERVE_CHECK(victim != running_.rend());
    const int64_t victim_id = *victim;
    if (victim_id == id && running_.size() == 1) {
      return Internal(RequestName(id) + " cannot grow to " + std::to_string(new_len) +
                      " tokens although it runs alone and was accepted as fitting the KV cache");
    }
    LSERVE_RETURN_IF_ERROR(Preempt(victim_id, out));
    if (victim_id == id) return Placement::kPreemptedItself;
  }
  LSERVE_RETURN_IF_ERROR(kv_->Grow(id, new_len));
  AppendStep(id, req, n, out);
  return Placement::kPlaced;
}

Status Scheduler::Admit(int64_t& budget, ScheduledStep& out) {
  size_t i = 0;
  while (i < waiting_.size() && budget > 0 && num_running() < config_.max_running) {
    const int64_t id = waiting_[i];
    RequestState& req = requests_.at(id);
    // A request that has all its tokens needs no step; it waits for Finish
    // and holds no place in the line.
    if (req.num_generated() >= req.max_new_tokens) {
      ++i;
      continue;
    }
    // Preempted while its token was being sampled: it cannot replay before
    // that token is known. Keeps its place (strict FCFS).
    if (req.awaiting_commit) break;
    const int64_t n = std::min({config_.prefill_chunk, budget, req.prompt_length});
    // A preempted request lost its work because the pool ran short; it comes
    // back only when the pool can hold all its tokens (it yields nothing new
    // before it has recomputed them), so that it is not preempted again
    // halfway while the requests that ran on finish.
    const int64_t hold = req.num_preemptions > 0 ? static_cast<int64_t>(req.tokens.size()) : n;
    LSERVE_RETURN_IF_ERROR(kv_->AddSequence(id));
    if (!kv_->CanGrow(id, hold)) {
      LSERVE_RETURN_IF_ERROR(kv_->Free(id));
      break;
    }
    LSERVE_RETURN_IF_ERROR(kv_->Grow(id, n));
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    running_.push_back(id);
    req.running = true;
    req.cached = 0;
    AppendStep(id, req, n, out);
    out.admitted.push_back(id);
    budget -= n;
  }
  return Status::Ok();
}

Result<ScheduledStep> Scheduler::Schedule() {
  ScheduledStep out;
  in_plan_.clear();
  int64_t budget = config_.max_step_tokens;

  // Pass 1 decodes, pass 2 prefills, each over running_ in admission order.
  // Place() removes only requests at index >= i (the victim is the newest not
  // in the plan, and `running_[i]` is not in the plan), so index i then holds
  // the next request to look at.
  for (const bool decode_pass : {true, false}) {
    size_t i = 0;
    while (i < running_.size() && budget > 0) {
      const int64_t id = running_[i];
      const RequestState& req = requests_.at(id);
      const bool decoding = req.cached >= req.prompt_length;
      if (decoding != decode_pass || !req.wants_step()) {
        ++i;
        continue;
      }
      LSERVE_CHECK(req.cached < static_cast<int64_t>(req.tokens.size()));
      const int64_t n = decoding ? 1 : std::min({config_.prefill_chunk, budget, req.prompt_length - req.cached});
      LSERVE_ASSIGN_OR_RETURN(const Placement placed, Place(id, n, out));
      if (placed == Placement::kPlaced) {
        budget -= n;
        ++i;
      }
    }
  }
  if (out.preempted.empty()) LSERVE_RETURN_IF_ERROR(Admit(budget, out));
  in_plan_.clear();
  return out;
}

Status Scheduler::CheckInvariant() const {
  int64_t running = 0;
  for (const auto& [id, req] : requests_) {
    if (req.running) {
      ++running;
      if (!kv_->Contains(id)) return Internal(RequestName(id) + " runs without a KV sequence");
      if (kv_->length(id) != req.cached) {
        return Internal(RequestName(id) + " has cached " + std::to_string(req.cached) + " tokens, its KV sequence " +
                        std::to_string(kv_->length(id)));
      }
    } else {
      if (kv_->Contains(id)) return Internal(RequestName(id) + " waits but holds a KV sequence");
      if (req.cached != 0) return Internal(RequestName(id) + " waits with a cached length");
    }
    if (req.cached > static_cast<int64_t>(req.tokens.size()) ||
        (!req.awaiting_commit && req.cached == static_cast<int64_t>(req.tokens.size()))) {
      return Internal(RequestName(id) + " has cached length " + std::to_string(req.cached) + " of " +
                      std::to_string(req.tokens.size()) + " tokens");
    }
  }
  if (running != num_running() || num_running() + num_waiting() != num_requests()) {
    return Internal("running and waiting lists do not partition the requests");
  }
  if (kv_->num_sequences() != num_running()) {
    return Internal("the KV cache holds " + std::to_string(kv_->num_sequences()) + " sequences, " +
                    std::to_string(num_running()) + " requests run");
  }
  for (const int64_t id : running_) {
    if (!Contains(id) || !Find(id).running) return Internal(RequestName(id) + " listed as running");
  }
  for (const int64_t id : waiting_) {
    if (!Contains(id) || Find(id).running) return Internal(RequestName(id) + " listed as waiting");
  }
  return Status::Ok();
}

}  // namespace lserve
