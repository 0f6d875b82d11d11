#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "runtime/engine_setup.h"
#include "sampling/sampler.h"

namespace lserve {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Frees the sequence's pages whatever way Generate leaves.
class SequenceGuard {
 public:
  SequenceGuard(KvCacheManager& kv, int64_t seq) : kv_(kv), seq_(seq) {}
  ~SequenceGuard() { (void)kv_.Free(seq_); }
  SequenceGuard(const SequenceGuard&) = delete;
  SequenceGuard& operator=(const SequenceGuard&) = delete;

 private:
  KvCacheManager& kv_;
  int64_t seq_;
};


}  // namespace

Generator::Generator(LlamaModel& model, const Tokenizer& tokenizer, const GeneratorOptions& options, KvCacheManager kv)
    : model_(&model), tokenizer_(&tokenizer), options_(options), kv_(std::move(kv)),
      eos_ids_(ModelEosIds(model.config(), tokenizer)) {}

Result<Generator> Generator::Create(LlamaModel& model, const Tokenizer& tokenizer, const GeneratorOptions& options) {
  if (options.prefill_chunk < 1) return InvalidArgument("prefill chunk must be at least 1 token");
  const KvCacheConfig& kvc = model.kv_cache_config();
  if (kvc.has_streaming_heads() && options.prefill_chunk > kvc.prefill_chunk) {
    return InvalidArgument("prefill chunk " + std::to_string(options.prefill_chunk) +
                           " is longer than the model's streaming rings are sized for (" +
                           std::to_string(kvc.prefill_chunk) + ")");
  }
  LSERVE_ASSIGN_OR_RETURN(KvCacheManager kv, KvCacheManager::Create(model.kv_cache_config()));
  return Generator(model, tokenizer, options, std::move(kv));
}

Status Generator::CheckPrompt(std::span<const int32_t> ids, int64_t extra_tokens) const {
  if (ids.empty()) return InvalidArgument("the prompt is empty");
  const int64_t vocab = model_->config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      return InvalidArgument("token id " + std::to_string(id) + " is out of vocabulary (size " +
                             std::to_string(vocab) + ")");
  const int64_t needed = static_cast<int64_t>(ids.size()) + extra_tokens;
  Status fits = kv_.CheckCanEverFit(needed);
  if (!fits.ok())
    return InvalidArgument("prompt (" + std::to_string(ids.size()) + " tokens) + max_tokens (" +
                           std::to_string(extra_tokens) + ") does not fit the KV cache: " + fits.message());
  return Status::Ok();
}

Status Generator::Prefill(int64_t seq, std::span<const int32_t> ids, bool all,
                          const std::function<Status(std::span<const float>)>& on_logits, SparsityStats* sparsity) {
  ForwardOutput out;
  for (size_t begin = 0; begin < ids.size(); begin += static_cast<size_t>(options_.prefill_chunk)) {
    const size_t end = std::min(ids.size(), begin + static_cast<size_t>(options_.prefill_chunk));
    LSERVE_RETURN_IF_ERROR(kv_.Grow(seq, static_cast<int64_t>(end)));
    BatchPlan plan;
    SequenceStep step;
    step.seq_id = seq;
    step.start_pos = static_cast<int64_t>(begin);
    step.tokens.assign(ids.begin() + begin, ids.begin() + end);
    step.is_decode = false;
    step.logits = all ? LogitsWanted::kAll : (end == ids.size() ? LogitsWanted::kLast : LogitsWanted::kNone);
    plan.steps.push_back(std::move(step));
    LSERVE_RETURN_IF_ERROR(model_->Forward(plan, kv_, &out));
    *sparsity += out.sparsity;
    if (!out.logits.empty()) LSERVE_RETURN_IF_ERROR(on_logits(out.logits));
  }
  return Status::Ok();
}

Status Generator::DecodeStep(int64_t seq, int64_t pos, int32_t token, std::vector<float>* logits,
                             SparsityStats* sparsity) {
  if (!kv_.decoding(seq)) LSERVE_RETURN_IF_ERROR(kv_.BeginDecode(seq));
  LSERVE_RETURN_IF_ERROR(kv_.Grow(seq, pos + 1));
  BatchPlan plan;
  SequenceStep step;
  step.seq_id = seq;
  step.start_pos = pos;
  step.tokens = {token};
  step.is_decode = true;
  step.logits = LogitsWanted::kLast;
  plan.steps.push_back(std::move(step));
  ForwardOutput out;
  LSERVE_RETURN_IF_ERROR(model_->Forward(plan, kv_, &out));
  *logits = std::move(out.logits);
  *sparsity += out.sparsity;
  return Status::Ok();
}

Status Generator::ForEachPromptLogits(std::span<const int32_t> ids, int64_t decode_from, const LogitsRowFn& on_row,
                                     SparsityStats* sparsity) {
  LSERVE_RETURN_IF_ERROR(CheckPrompt(ids, 0));
  if (decode_from < 1) return InvalidArgument("decode-from must be at least 1 (one prompt token is prefilled)");
  const size_t n_prefill = static_cast<size_t>(std::min<int64_t>(decode_from, static_cast<int64_t>(ids.size())));
  const int64_t seq = next_seq_id_++;
  LSERVE_RETURN_IF_ERROR(kv_.AddSequence(seq));
  SequenceGuard guard(kv_, seq);
  const auto vocab = static_cast<size_t>(model_->config().vocab_size);
  SparsityStats stats;
  int64_t next_row = 0;
  LSERVE_RETURN_IF_ERROR(Prefill(
      seq, ids.first(n_prefill), /*all=*/true,
      [&](std::span<const float> rows) -> Status {
        for (size_t r = 0; r + vocab <= rows.size(); r += vocab) {
          LSERVE_RETURN_IF_ERROR(on_row(next_row++, rows.subspan(r, vocab)));
        }
        return Status::Ok();
      },
      &stats));
  std::vector<float> row;
  for (size_t i = n_prefill; i < ids.size(); ++i) {
    LSERVE_RETURN_IF_ERROR(DecodeStep(seq, static_cast<int64_t>(i), ids[i], &row, &stats));
    LSERVE_RETURN_IF_ERROR(on_row(next_row++, row));
  }
  if (sparsity != nullptr) *sparsity = stats;
  return Status::Ok();
}

Result<std::vector<float>> Generator::PromptLogits(std::span<const int32_t> ids, int64_t decode_from,
                                                   SparsityStats* sparsity) {
  std::vector<float> logits;
  LSERVE_RETURN_IF_ERROR(ForEachPromptLogits(
      ids, decode_from,
      [&](int64_t index, std::span<const float> row) {
        if (index == 0) logits.reserve(ids.size() * row.size());  // the prompt passed its checks
        logits.insert(logits.end(), row.begin(), row.end());
        return Status::Ok();
      },
      sparsity));
  return logits;
}

Result<GenerationResult> Generator::Generate(std::span<const int32_t> prompt, const SamplingParams& params,
                                             const std::function<void(std::string_view)>& on_text) {
  const auto vocab = static_cast<int32_t>(model_->config().vocab_size);
  LSERVE_RETURN_IF_ERROR(params.Validate(vocab));
  LSERVE_RETURN_IF_ERROR(CheckPrompt(prompt, params.max_tokens));
  LSERVE_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(params, vocab, prompt));
  StopChecker stop(params, eos_ids_);
  IncrementalDecoder detokenizer(*tokenizer_, /*skip_special_tokens=*/true);

  const int64_t seq = next_seq_id_++;
  LSERVE_RETURN_IF_ERROR(kv_.AddSequence(seq));
  SequenceGuard guard(kv_, seq);

  GenerationResult result;
  result.timings.prompt_tokens = static_cast<int64_t>(prompt.size());
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  LSERVE_RETURN_IF_ERROR(Prefill(
      seq, prompt, /*all=*/false,
      [&logits](std::span<const float> last) {
        logits.assign(last.begin(), last.end());
        return Status::Ok();
      },
      &result.sparsity));
  result.timings.prefill_ms = MsSince(t0);
  t0 = std::chrono::steady_clock::now();

  int64_t length = static_cast<int64_t>(prompt.size());
  while (true) {
    LSERVE_ASSIGN_OR_RETURN(SampledToken token, sampler.Sample(logits));
    result.ids.push_back(token.token_id);
    StopUpdate update = stop.Step(token.token_id, detokenizer);
    if (!update.text.empty()) {
      result.text += update.text;
      if (on_text) on_text(update.text);
    }
    if (update.finished()) {
      result.finish_reason = *update.finish_reason;
      break;
    }
    // Decode step: the sampled token at position `length`.
    LSERVE_RETURN_IF_ERROR(DecodeStep(seq, length, token.token_id, &logits, &result.sparsity));
    ++length;
  }
  result.kv_pages = kv_.PagesHeld(seq);
  result.timings.decode_ms = MsSince(t0);
  result.timings.generated_tokens = static_cast<int64_t>(result.ids.size());
  return result;
}

}  // namespace lserve
