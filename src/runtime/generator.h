// Generator: runs one sequence at a time through a LlamaModel, the offline
// path behind `lserve generate`, `logits` and `chat`: chunked prefill over
// the paged KV cache, then decode steps with sampling, stop strings and
// streaming detokenization. The serving Engine (continuous batching) builds
// on the same pieces.
#pragma once

#include <cstdint>
#include <climits>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_cache.h"
#include "model/llama_model.h"
#include "sampling/sampling_params.h"
#include "sampling/stop_checker.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

struct GenerationTimings {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_ms = 0;  // the prompt's forward passes, up to the first token's logits
  double decode_ms = 0;   // every later forward pass and sampling step
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prompt_tokens * 1000.0 / prefill_ms : 0; }
  // Decode speed counts the tokens produced by decode steps (all but the first).
  double decode_tokens_per_s() const {
    return decode_ms > 0 && generated_tokens > 1 ? (generated_tokens - 1) * 1000.0 / decode_ms : 0;
  }
};

struct GenerationResult {
  std::vector<int32_t> ids;  // generated ids (a stop token included, as HF returns it)
  std::string text;          // the emitted text (stop strings and stop-token text cut)
  FinishReason finish_reason = FinishReason::kLength;
  GenerationTimings timings;
  SparsityStats sparsity;  // pages the attention read over the whole generation
  PageCounts kv_pages;     // pages the sequence held at its end, per pool
};

struct GeneratorOptions {
  int64_t prefill_chunk = 512;  // prompt tokens per forward pass
};

class Generator {
 public:
  // `model` and `tokenizer` must outlive the generator.
  static Result<Generator> Create(LlamaModel& model, const Tokenizer& tokenizer, const GeneratorOptions& options = {});

  // Token ids that end generation as EOS: the model's generation config, else
  // its config, else the tokenizer's EOS.
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }

  // Generates from `prompt`; `on_text` (may be empty) receives each chunk of
  // text as it becomes final. InvalidArgument for an empty prompt, ids
  // outside the vocabulary, invalid parameters, or prompt + max_tokens beyond
  // the KV cache.
  Result<GenerationResult> Generate(std::span<const int32_t> prompt, const SamplingParams& params,
                                    const std::function<void(std::string_view)>& on_text = {});

  // The next-token logits at every position of `ids`: [ids.size(), vocab]
  // f32. Ids [0, decode_from) are prefilled in chunks of
  // options.prefill_chunk; each later id is fed as one decode step (the
  // decode attention path). `sparsity` (nullable) receives the pages read.
  Result<std::vector<float>> PromptLogits(std::span<const int32_t> ids, int64_t decode_from = INT64_MAX,
                                          SparsityStats* sparsity = nullptr);
  // As PromptLogits, handing each position's logits row (vocab f32, valid
  // during the call) to `on_row` in order instead of keeping them all; an
  // error from `on_row` stops the pass and is returned.
  using LogitsRowFn = std::function<Status(int64_t row, std::span<const float> logits)>;
  Status ForEachPromptLogits(std::span<const int32_t> ids, int64_t decode_from, const LogitsRowFn& on_row,
                             SparsityStats* sparsity = nullptr);

 private:
  Generator(LlamaModel& model, const Tokenizer& tokenizer, const GeneratorOptions& options, KvCacheManager kv);
  Status CheckPrompt(std::span<const int32_t> ids, int64_t extra_tokens) const;
  // Prefills ids into sequence `seq`; the logits of the last position (or of
  // every position when `all` is set) go to `on_logits`, one call per forward
  // pass that produced any.
  Status Prefill(int64_t seq, std::span<const int32_t> ids, bool all,
                 const std::function<Status(std::span<const float>)>& on_logits, SparsityStats* sparsity);
  // One decode step of `token` at position `pos`; its logits replace *logits.
  Status DecodeStep(int64_t seq, int64_t pos, int32_t token, std::vector<float>* logits, SparsityStats* sparsity);

  LlamaModel* model_;
  const Tokenizer* tokenizer_;
  GeneratorOptions options_;
  KvCacheManager kv_;
  std::vector<int32_t> eos_ids_;
  int64_t next_seq_id_ = 0;
};

}  // namespace lserve
