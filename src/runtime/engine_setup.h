// What Engine::Create shares with the offline commands: turning the
// attention settings (DESIGN.md §4) into the model's AttentionOptions, head
// roles from a DuoAttention pattern or from a streaming ratio alone, the
// model's EOS ids, and the checks of an EngineConfig made before any file is
// read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "formats/model_source.h"
#include "lserve/engine.h"
#include "model/llama_model.h"
#include "sparsity/head_roles.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

// The attention a user asks for, before the model is known.
struct AttentionSettings {
  std::string attention = "lserve";       // "dense" | "lserve"
  std::string attn_pattern;               // full_attention_heads.tsv (or its folder)
  std::optional<double> streaming_ratio;  // with a pattern: default 0.5; alone: calibrated
  int64_t prefill_sink = 128, prefill_local = 8192;
  int64_t decode_sink = 128, decode_local = 256;
  int64_t token_budget = 4096;
  int64_t select_interval = 4;
};

AttentionSettings AttentionSettingsOf(const EngineConfig& config);

// Head roles from the pattern (split at the ratio, default 0.5), or
// calibrated from the ratio alone on a synthetic passkey text (loading the
// model densely on `backend`); nullopt when neither is given.
Result<std::optional<HeadRoles>> HeadRolesFromSettings(const std::string& attn_pattern,
                                                       std::optional<double> streaming_ratio,
                                                       const ModelSource& source, const Tokenizer& tokenizer,
                                                       Backend& backend);

// The model's attention: dense, or lserve with the roles of
// HeadRolesFromSettings (none given: every head a retrieval head, still
// through the sparse kernels and the page selection). InvalidArgument for an
// unknown attention name, or a pattern / ratio with dense attention.
Result<AttentionOptions> MakeAttentionOptions(const AttentionSettings& settings, const ModelSource& source,
                                              const Tokenizer& tokenizer, Backend& backend);

// Token ids that end generation as EOS: the model's generation config, else
// its config, else the tokenizer's EOS; sorted, without duplicates.
std::vector<int32_t> ModelEosIds(const ModelConfig& config, const Tokenizer& tokenizer);

// The longest sequence the model is meant for: max_position_embeddings, or
// that times the factor under dynamic-NTK RoPE scaling (which exists to run
// past the trained length, as vLLM counts it); 0 when the config gives none.
int64_t ModelContextLength(const ModelConfig& config);

// Replaces the RoPE scaling of `config` with `type` ("none", "linear",
// "dynamic", "yarn"; "" = keep the model's) and `factor`, the original
// context being the model's max_position_embeddings, which grows by the
// factor (except for dynamic, which extends as the sequence grows).
// InvalidArgument for an unknown type or a factor outside [1, 1024].
Status OverrideRopeScaling(const std::string& type, double factor, ModelConfig* config);

// The EngineConfig fields that need no model: InvalidArgument naming the
// first bad field.
Status ValidateEngineConfig(const EngineConfig& config);

}  // namespace lserve
