// SamplingParams: what a request asks of the sampler and the stop logic,
// with the OpenAI / vLLM meanings, and the validation the server maps to
// 400 errors (RELIABILITY.md C14, C15, C18, C19).
//
// The processing order for one step (Sampler, logits_processors.h), after
// vLLM's v1 sampler:
//   1. logit_bias is added to the raw logits;
//   2. repetition_penalty (HF): over the prompt and the generated tokens,
//      positive logits are divided by it and the others multiplied;
//   3. frequency_penalty * count + presence_penalty * (count > 0) is
//      subtracted, counting the generated tokens only (OpenAI formula);
//   -- greedy (temperature < kGreedyTemperature) stops here: argmax, lowest
//      id on ties; top_k / top_p / min_p do not apply;
//   4. the logits are divided by temperature;
//   5. top_k, then 6. top_p, then 7. min_p mask the dropped tokens to -inf
//      (the order of HF's warpers and vLLM's v0 sampler; vLLM's v1 sampler
//      applies min_p before top_k / top_p, which differs only when min_p is
//      combined with another filter);
//   8. one token is drawn from the softmax of what is left.
//
// Field types are wide (int64_t, double) so that the server can hand over any
// number the JSON held and let Validate name the field that is out of range.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace lserve {

// Caps (RELIABILITY.md "Defaults").
inline constexpr size_t kMaxStopStrings = 8;
inline constexpr size_t kMaxStopStringBytes = 256;
inline constexpr int64_t kMaxTopLogprobs = 20;
inline constexpr double kMaxAbsLogitBias = 100.0;
inline constexpr double kMaxAbsFrequencyPenalty = 2.0;  // also presence_penalty
inline constexpr int64_t kMaxMaxTokens = 2147483647;    // 2^31 - 1
// Temperatures below this sample greedily (vLLM's _SAMPLING_EPS): dividing
// by a tinier one would overflow float logits.
inline constexpr double kGreedyTemperature = 1e-5;

// Which distribution the logprobs describe.
enum class LogprobsMode : uint8_t {
  // log_softmax of the model's logits before any processing (vLLM's default
  // logprobs_mode "raw_logprobs"); always finite for finite logits.
  kRaw,
  // log_softmax of the logits after steps 1-7 (vLLM "processed_logprobs"):
  // filtered tokens get -inf; under greedy, after steps 1-3.
  kProcessed,
};

// A validation failure: `param` is the request field ("temperature",
// "logit_bias", ...), as OpenAI error bodies name it.
struct ParamError {
  std::string param;
  std::string message;  // a sentence that starts with the field name
};

struct SamplingParams {
  double temperature = 1.0;  // 0 (or < kGreedyTemperature): greedy
  int64_t top_k = 0;         // 0 or -1: off; >= vocab: off
  double top_p = 1.0;        // (0, 1]; 1: off
  double min_p = 0.0;        // [0, 1]; 0: off
  double repetition_penalty = 1.0;  // > 0; 1: off
  double frequency_penalty = 0.0;   // [-2, 2]
  double presence_penalty = 0.0;    // [-2, 2]
  std::map<int64_t, double> logit_bias;  // token id -> bias in [-100, 100]
  std::optional<uint64_t> seed;          // absent: seeded from a random device
  int64_t max_tokens = 16;               // generated tokens, stop token included
  std::vector<std::string> stop;         // stop strings, cut out of the output
  std::vector<int64_t> stop_token_ids;   // finish with "stop"; text not emitted
  bool ignore_eos = false;
  bool logprobs = false;     // report the chosen token's logprob
  int64_t top_logprobs = 0;  // and this many most likely tokens (needs logprobs)
  LogprobsMode logprobs_mode = LogprobsMode::kRaw;

  bool greedy() const { return temperature < kGreedyTemperature; }

  // The first invalid field, or nullopt. Token ids (logit_bias keys,
  // stop_token_ids) must lie in [0, vocab_size).
  std::optional<ParamError> FindInvalid(int32_t vocab_size) const;
  // InvalidArgument(FindInvalid(...)->message), or OK.
  Status Validate(int32_t vocab_size) const;
};

// The signed entry point for a request's "seed": negative values are an
// InvalidArgument naming "seed" (an unsigned field cannot hold them).
Result<uint64_t> SeedFromSigned(int64_t seed);

}  // namespace lserve
