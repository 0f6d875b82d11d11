// BatchPlan: what one engine step computes. Several sequences per step, each
// a prefill chunk (any number of tokens, at any offset: start_pos = tokens
// already cached) or one decode token, mixed freely in one step. Plain data;
// paged_batch.h checks a plan against the KV cache and flattens it.
#pragma once

#include <cstdint>
#include <vector>

namespace lserve {

// Which positions of a step need logits.
enum class LogitsWanted { kNone, kLast, kAll };

struct SequenceStep {
  int64_t seq_id = 0;
  int64_t start_pos = 0;        // absolute position of tokens[0] = tokens already cached
  std::vector<int32_t> tokens;  // token ids at positions start_pos, start_pos + 1, ...
  bool is_decode = false;       // one generated token (tokens.size() == 1)
  LogitsWanted logits = LogitsWanted::kNone;
};

struct BatchPlan {
  std::vector<SequenceStep> steps;
};

}  // namespace lserve
