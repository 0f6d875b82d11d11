// The steps of one sampling step as plain functions over a logits row
// ([vocab] f32, modified in place), in the order sampling_params.h gives.
// Sampler strings them together; tests call them one by one.
//
// Exact definitions (what the tests' sort-based references compute):
//   top_k  keeps every token whose logit is >= the k-th largest logit, so
//          tokens tied with the k-th are all kept (HF, vLLM).
//   With M the largest logit left and w_i = expf(logit_i - M) (float; the
//   largest weight is exactly 1), Z = the double sum of the weights in
//   increasing id order:
//   top_p  ranks the weights in decreasing order, takes the smallest m with
//          C_m >= top_p * Z, C_m the double sum of the m largest weights in
//          that order, and keeps every token with w >= the m-th largest
//          weight (ties at the boundary kept; equal weights make C_m the same
//          whatever order ties take). No such m (rounding): all kept.
//   min_p  keeps w >= min_p, i.e. p_i >= min_p * p_max.
// Each filter costs O(vocab): top_k is one pass with a k-heap (nth_element
// for k > 256); min_p one comparison per token; top_p buckets the
// weights by binary exponent, partitions off the heaviest buckets that hold
// top_p of the mass and sorts only those, so a peaked distribution never
// sorts the vocabulary (a flat one must: the definition ranks the weights).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lserve {

// OK when every logit is finite or -inf and at least one is finite; an
// Internal error (the model produced it, not the request) naming the first
// bad position otherwise.
Status CheckLogits(std::span<const float> logits);

// Tokens seen by one sequence, for the penalties: the distinct prompt tokens
// (repetition penalty) and how often each token was generated (all three).
class TokenCounts {
 public:
  void AddPrompt(std::span<const int32_t> ids) { prompt_.insert(ids.begin(), ids.end()); }
  void AddGenerated(int32_t id) { ++generated_[id]; }

  const std::unordered_set<int32_t>& prompt() const { return prompt_; }
  const std::unordered_map<int32_t, int32_t>& generated() const { return generated_; }

 private:
  std::unordered_set<int32_t> prompt_;
  std::unordered_map<int32_t, int32_t> generated_;
};

// logit += bias for each (token id, bias); ids must lie in the row.
void ApplyLogitBias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);

// For each token in prompt or generated (ids must lie in the row), HF's
// repetition penalty: logit > 0 ? logit / repetition : logit * repetition;
// then for generated tokens (OpenAI):
//   logit -= frequency * count + presence * (count > 0).
// Costs O(distinct tokens seen). Results saturate at +-FLT_MAX; -inf stays.
void ApplyPenalties(std::span<float> logits, const TokenCounts& counts, double repetition, double frequency,
                    double presence);

// logit /= temperature (> 0) in float, saturating at +-FLT_MAX; -inf stays.
void ApplyTemperature(std::span<float> logits, double temperature);

// Index of the largest logit, the lowest index among equals. -1 when empty.
int32_t ArgmaxLowestId(std::span<const float> logits);

// Scratch reused from step to step (a step then allocates nothing), and
// FilterLogits' result.
struct FilterWorkspace {
  std::vector<float> values;          // top_k selection
  std::vector<float> ranked;          // top_p selection
  std::vector<int32_t> kept_ids;      // the kept tokens, increasing id
  std::vector<float> kept_weights;    // their w = expf(logit - max)
};

// Applies top_k (<= 0 or >= vocab: off), top_p (>= 1: off) and min_p (<= 0:
// off) in that order; dropped tokens get -inf. Afterwards ws->kept_ids /
// kept_weights list what can be drawn (the finite logits). The largest logit
// always survives. Precondition: CheckLogits(logits) is OK.
void FilterLogits(std::span<float> logits, int64_t top_k, double top_p, double min_p, FilterWorkspace* ws);

// Inverse-CDF draw from the kept tokens of the last FilterLogits with
// probabilities w / sum(w): walks the ids in increasing order and returns the
// first whose running weight sum exceeds u * sum(w), u in [0, 1).
int32_t DrawKeptToken(const FilterWorkspace& ws, double u);

struct TokenLogprob {
  int32_t token_id;
  float logprob;
};

struct LogprobsResult {
  float chosen;                    // logprob of the chosen token
  std::vector<TokenLogprob> top;   // the top_n largest, decreasing, lowest id first on ties
};

// log_softmax of the row (double accumulation): the chosen token's logprob
// and the min(top_n, vocab) most likely tokens. -inf logits give -inf.
// O(vocab) with a heap of top_n entries.
LogprobsResult ComputeLogprobs(std::span<const float> logits, int32_t chosen, int64_t top_n);

}  // namespace lserve
