#include "sampling/sampler.h"

#include <string>

namespace lserve {

Sampler::Sampler(const SamplingParams& params, int32_t vocab_size, uint64_t seed, uint64_t stream)
    : vocab_size_(vocab_size),
      greedy_(params.greedy()),
      temperature_(params.temperature),
      top_k_(params.top_k),
      top_p_(params.top_p),
      min_p_(params.min_p),
      repetition_penalty_(params.repetition_penalty),
      frequency_penalty_(params.frequency_penalty),
      presence_penalty_(params.presence_penalty),
      logprobs_(params.logprobs),
      top_logprobs_(params.top_logprobs),
      logprobs_mode_(params.logprobs_mode),
      seed_(seed),
      rng_(seed, stream) {
  logit_bias_.reserve(params.logit_bias.size());
  for (const auto& [id, bias] : params.logit_bias) {
    logit_bias_.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
  }
}

Result<Sampler> Sampler::Create(const SamplingParams& params, int32_t vocab_size, std::span<const int32_t> prompt,
                                uint64_t stream) {
  if (vocab_size <= 0) return InvalidArgument("vocabulary size must be positive, got " + std::to_string(vocab_size));
  LSERVE_RETURN_IF_ERROR(params.Validate(vocab_size));
  for (int32_t id : prompt) {
    if (id < 0 || id >= vocab_size) {
      return InvalidArgument("prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(vocab_size) + ")");
    }
  }
  Sampler sampler(params, vocab_size, params.seed ? *params.seed : RandomSeed(), stream);
  // Only the repetition penalty looks at the prompt.
  if (sampler.repetition_penalty_ != 1.0) sampler.counts_.AddPrompt(prompt);
  return sampler;
}

Result<SampledToken> Sampler::Sample(std::span<float> logits) {
  if (logits.size() != static_cast<size_t>(vocab_size_)) {
    return InvalidArgument("logits row has " + std::to_string(logits.size()) + " entries, expected " +
                           std::to_string(vocab_size_));
  }
  LSERVE_RETURN_IF_ERROR(CheckLogits(logits));
  if (logprobs_ && logprobs_mode_ == LogprobsMode::kRaw) raw_logits_.assign(logits.begin(), logits.end());

  ApplyLogitBias(logits, logit_bias_);
  if (penalties_active()) {
    ApplyPenalties(logits, counts_, repetition_penalty_, frequency_penalty_, presence_penalty_);
  }

  SampledToken out;
  if (greedy_) {
    out.token_id = ArgmaxLowestId(logits);
  } else {
    ApplyTemperature(logits, temperature_);
    FilterLogits(logits, top_k_, top_p_, min_p_, &workspace_);
    out.token_id = DrawKeptToken(workspace_, rng_.NextDouble());
  }

  if (logprobs_) {
    std::span<const float> source = logits;
    if (logprobs_mode_ == LogprobsMode::kRaw) source = raw_logits_;
    LogprobsResult lp = ComputeLogprobs(source, out.token_id, top_logprobs_);
    out.logprob = lp.chosen;
    out.top_logprobs = std::move(lp.top);
  }

  if (penalties_active()) counts_.AddGenerated(out.token_id);
  ++num_generated_;
  return out;
}

}  // namespace lserve
