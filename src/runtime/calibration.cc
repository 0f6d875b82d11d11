#include "runtime/calibration.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kvcache/kv_cache.h"
#include "runtime/eval_tasks.h"
#include "sampling/pcg32.h"

namespace lserve {

Result<AttentionPattern> CalibrateAttentionPattern(LlamaModel& model, std::span<const int32_t> ids,
                                                   const CalibrationOptions& options) {
  if (options.sink < 0 || options.local < 1 || options.prefill_chunk < 1) {
    return InvalidArgument("calibration: sink >= 0, local >= 1 and prefill chunk >= 1");
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t window = options.sink + options.local;
  if (n <= window) {
    return InvalidArgument("calibration text of " + std::to_string(n) + " tokens is not longer than the window (" +
                           std::to_string(window) + " = sink + local): no query would see past it");
  }
  LSERVE_ASSIGN_OR_RETURN(KvCacheManager kv, KvCacheManager::Create(model.kv_cache_config()));
  LSERVE_RETURN_IF_ERROR(kv.CheckCanEverFit(n).Annotate("calibration text"));
  constexpr int64_t kSeq = 0;
  LSERVE_RETURN_IF_ERROR(kv.AddSequence(kSeq));
  AttentionProbe probe{.sink = options.sink, .local = options.local, .min_position = window};
  ForwardOutput out;
  for (int64_t begin = 0; begin < n; begin += options.prefill_chunk) {
    const int64_t end = std::min(n, begin + options.prefill_chunk);
    LSERVE_RETURN_IF_ERROR(kv.Grow(kSeq, end));
    BatchPlan plan;
    plan.steps.push_back(SequenceStep{.seq_id = kSeq,
                                      .start_pos = begin,
                                      .tokens = std::vector<int32_t>(ids.begin() + begin, ids.begin() + end),
                                      .is_decode = false,
                                      .logits = LogitsWanted::kNone});
    LSERVE_RETURN_IF_ERROR(model.Forward(plan, kv, &out, &probe));
  }
  const ModelConfig& c = model.config();
  AttentionPattern pattern{.num_layers = c.num_hidden_layers, .num_kv_heads = c.num_key_value_heads, .gates = {}};
  for (double kept : probe.kept_mass) {
    pattern.gates.push_back(std::clamp(1.0 - kept / static_cast<double>(probe.rows), 0.0, 1.0));
  }
  return pattern;
}

std::string SyntheticPasskeyText(int64_t words, uint64_t seed) {
  Pcg32 rng(seed, 0x5eed);
  const uint32_t key = 10000 + rng.Next() % 90000;
  const int64_t sentences = std::max<int64_t>(1, words / 4);
  const int64_t depth = static_cast<int64_t>(rng.Next() % static_cast<uint64_t>(sentences));
  return PasskeyText(sentences, depth, key);
}

Result<HeadRoles> CalibrateRolesOnPasskey(const ModelSource& source, const Tokenizer& tokenizer, Backend& backend,
                                          double streaming_ratio, const CalibrationOptions& options, int64_t words,
                                          uint64_t seed) {
  LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                          tokenizer.Encode(SyntheticPasskeyText(words, seed), /*add_special_tokens=*/true));
  ModelOptions mo;
  mo.kv_cache_tokens = static_cast<int64_t>(ids.size());
  mo.prefill_chunk = options.prefill_chunk;
  LSERVE_ASSIGN_OR_RETURN(std::unique_ptr<LlamaModel> model, LlamaModel::Load(source, backend, mo));
  LSERVE_ASSIGN_OR_RETURN(AttentionPattern pattern, CalibrateAttentionPattern(*model, ids, options));
  return AssignHeadRoles(pattern, streaming_ratio, pattern.num_layers, pattern.num_kv_heads);
}

}  // namespace lserve
