// Sampler: the per-sequence sampling state of one request — its validated
// parameters, its own seeded random stream and the token counts the
// penalties need — and one Sample() per generated token.
//
//   LSERVE_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(params, vocab, prompt_ids));
//   for (...) {
//     LSERVE_ASSIGN_OR_RETURN(SampledToken t, sampler.Sample(logits_row));
//     ...
//   }
//
// Sample() records the token it returns as generated, so the counts stay
// incremental (O(distinct tokens) per step for the penalties, O(vocab) for
// the rest). The Sampler outlives preemption by recompute: the counts and
// the random stream continue where they were, so outputs do not change.
//
// Determinism: the same (seed, stream), parameters and logits give the same
// tokens on every platform (Pcg32 and the inverse-CDF draw are our own; the
// softmax uses expf, whose last bit may differ between C libraries, which
// matters only for draws landing within an ulp of a boundary).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/status.h"
#include "sampling/logits_processors.h"
#include "sampling/pcg32.h"
#include "sampling/sampling_params.h"

namespace lserve {

struct SampledToken {
  int32_t token_id = -1;
  // Filled when params.logprobs (in params.logprobs_mode): the chosen token's
  // logprob and the params.top_logprobs most likely tokens, decreasing, the
  // lowest id first on ties. The server clamps -inf (processed mode) for JSON.
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
};

class Sampler {
 public:
  // Validates `params` against `vocab_size` (the width of a logits row) and
  // the prompt ids (each in [0, vocab_size)). `stream` selects an
  // independent random sequence for the same seed, e.g. the choice index
  // when a request asks for n > 1 completions with one seed.
  static Result<Sampler> Create(const SamplingParams& params, int32_t vocab_size,
                                std::span<const int32_t> prompt, uint64_t stream = 0);

  // One step over `logits` ([vocab_size] f32), processed in place: on return
  // they hold the processed logits (steps 1-3 of sampling_params.h under
  // greedy, 1-7 otherwise: dropped tokens at -inf). Returns the chosen token
  // and records it as generated. Errors (nothing recorded, no random number
  // used): InvalidArgument for a row of the wrong width, Internal for logits
  // holding NaN or +inf or no finite value (a fault of this sequence only).
  Result<SampledToken> Sample(std::span<float> logits);

  int64_t num_generated() const { return num_generated_; }
  // The seed in use: params.seed, or the one drawn from the random device.
  uint64_t seed() const { return seed_; }

 private:
  Sampler(const SamplingParams& params, int32_t vocab_size, uint64_t seed, uint64_t stream);

  bool penalties_active() const {
    return repetition_penalty_ != 1.0 || frequency_penalty_ != 0.0 || presence_penalty_ != 0.0;
  }

  int32_t vocab_size_;
  bool greedy_;
  double temperature_;
  int64_t top_k_;
  double top_p_;
  double min_p_;
  double repetition_penalty_;
  double frequency_penalty_;
  double presence_penalty_;
  std::vector<std::pair<int32_t, float>> logit_bias_;
  bool logprobs_;
  int64_t top_logprobs_;
  LogprobsMode logprobs_mode_;

  uint64_t seed_;
  Pcg32 rng_;
  TokenCounts counts_;
  int64_t num_generated_ = 0;
  FilterWorkspace workspace_;
  std::vector<float> raw_logits_;  // a copy for kRaw logprobs
};

}  // namespace lserve
