#include "sampling/stop_checker.h"

#include <algorithm>

namespace lserve {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
  }
  return "stop";
}

StopChecker::StopChecker(const SamplingParams& params, std::span<const int32_t> eos_token_ids)
    : max_tokens_(params.max_tokens) {
  patterns_.reserve(params.stop.size());
  for (const std::string& text : params.stop) {
    // Validate rejects empty and over-long stop strings; skip rather than
    // trust that here (an empty pattern would match everywhere).
    if (text.empty() || text.size() > kMaxStopStringBytes) continue;
    StopPattern p;
    p.text = text;
    p.failure.assign(text.size(), 0);
    size_t k = 0;
    for (size_t j = 1; j < text.size(); ++j) {
      while (k > 0 && text[j] != text[k]) k = p.failure[k - 1];
      if (text[j] == text[k]) ++k;
      p.failure[j] = static_cast<uint16_t>(k);
    }
    patterns_.push_back(std::move(p));
  }
  if (!params.ignore_eos) eos_ids_.assign(eos_token_ids.begin(), eos_token_ids.end());
  std::sort(eos_ids_.begin(), eos_ids_.end());
  for (int64_t id : params.stop_token_ids) {
    if (id >= INT32_MIN && id <= INT32_MAX) stop_token_ids_.push_back(static_cast<int32_t>(id));
  }
  std::sort(stop_token_ids_.begin(), stop_token_ids_.end());
}

bool StopChecker::IsStopToken(int32_t token) const {
  return std::binary_search(eos_ids_.begin(), eos_ids_.end(), token) ||
         std::binary_search(stop_token_ids_.begin(), stop_token_ids_.end(), token);
}

StopUpdate StopChecker::Finish(StopUpdate update, FinishReason reason) {
  finish_reason_ = reason;
  update.finish_reason = reason;
  pending_.clear();
  return update;
}

StopUpdate StopChecker::AppendText(std::string_view text) {
  StopUpdate update;
  if (finished()) {
    update.finish_reason = finish_reason_;
    return update;
  }
  // Invariant: pending_ is the longest suffix of the stream that is a proper
  // prefix of a stop string, i.e. pending_.size() == max matched; no earlier
  // position can start an occurrence that is not yet complete.
  const size_t base = pending_.size();
  pending_.append(text);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    size_t longest = 0;
    size_t which = 0;
    for (size_t k = 0; k < patterns_.size(); ++k) {
      StopPattern& p = patterns_[k];
      size_t m = p.matched;
      while (m > 0 && p.text[m] != c) m = p.failure[m - 1];
      if (p.text[m] == c) ++m;
      p.matched = m;
      if (m == p.text.size() && m > longest) {
        longest = m;
        which = k;
      }
    }
    if (longest > 0) {
      // The occurrence ends at pending_[base + i]; it started inside
      // pending_ because its first longest - 1 bytes were matched already.
      const size_t end = base + i + 1;
      update.text = pending_.substr(0, end - longest);
      update.stop_string = which;
      return Finish(std::move(update), FinishReason::kStop);
    }
  }
  size_t hold = 0;
  for (const StopPattern& p : patterns_) hold = std::max(hold, p.matched);
  const size_t emit = pending_.size() - hold;
  update.text = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return update;
}

StopUpdate StopChecker::EndText(std::string_view tail, FinishReason reason) {
  StopUpdate update = AppendText(tail);
  if (update.finished()) return update;
  update.text += pending_;
  return Finish(std::move(update), reason);
}

}  // namespace lserve
