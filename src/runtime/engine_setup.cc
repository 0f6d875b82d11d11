#include "runtime/engine_setup.h"

#include <algorithm>
#include <cmath>

#include "runtime/calibration.h"

namespace lserve {

AttentionSettings AttentionSettingsOf(const EngineConfig& c) {
  AttentionSettings s;
  s.attention = c.attention;
  s.attn_pattern = c.attn_pattern;
  s.streaming_ratio = c.streaming_ratio;
  s.prefill_sink = c.prefill_sink;
  s.prefill_local = c.prefill_local;
  s.decode_sink = c.decode_sink;
  s.decode_local = c.decode_local;
  s.token_budget = c.token_budget;
  s.select_interval = c.select_interval;
  return s;
}

Result<std::optional<HeadRoles>> HeadRolesFromSettings(const std::string& attn_pattern,
                                                       std::optional<double> streaming_ratio,
                                                       const ModelSource& source, const Tokenizer& tokenizer,
                                                       Backend& backend) {
  const ModelConfig& c = source.config;
  if (!attn_pattern.empty()) {
    LSERVE_ASSIGN_OR_RETURN(const AttentionPattern pattern, LoadAttentionPattern(attn_pattern));
    auto roles = AssignHeadRoles(pattern, streaming_ratio.value_or(0.5), c.num_hidden_layers, c.num_key_value_heads);
    if (!roles.ok()) return roles.status().Annotate(attn_pattern);
    return std::optional<HeadRoles>(std::move(*roles));
  }
  if (!streaming_ratio) return std::optional<HeadRoles>();
  auto roles = CalibrateRolesOnPasskey(source, tokenizer, backend, *streaming_ratio);
  if (!roles.ok()) return roles.status().Annotate("calibrating head roles on a passkey text");
  return std::optional<HeadRoles>(std::move(*roles));
}

Result<AttentionOptions> MakeAttentionOptions(const AttentionSettings& s, const ModelSource& source,
                                              const Tokenizer& tokenizer, Backend& backend) {
  if (s.attention != "dense" && s.attention != "lserve") {
    return InvalidArgument("attention must be \"dense\" or \"lserve\", got \"" + s.attention + "\"");
  }
  const bool lserve = s.attention == "lserve";
  if (!lserve && (!s.attn_pattern.empty() || s.streaming_ratio.has_value())) {
    return InvalidArgument("attn_pattern / streaming_ratio need the lserve attention");
  }
  AttentionOptions a;
  a.mode = lserve ? AttentionMode::kLServe : AttentionMode::kDense;
  a.prefill_sink = s.prefill_sink;
  a.prefill_local = s.prefill_local;
  a.decode_sink = s.decode_sink;
  a.decode_local = s.decode_local;
  a.token_budget = s.token_budget;
  a.select_interval = s.select_interval;
  if (lserve) {
    LSERVE_ASSIGN_OR_RETURN(std::optional<HeadRoles> roles,
                            HeadRolesFromSettings(s.attn_pattern, s.streaming_ratio, source, tokenizer, backend));
    if (roles) a.head_roles = roles->roles;
  }
  return a;
}

std::vector<int32_t> ModelEosIds(const ModelConfig& config, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  const auto& source = !config.generation.eos_token_ids.empty() ? config.generation.eos_token_ids : config.eos_token_ids;
  for (int64_t id : source) ids.push_back(static_cast<int32_t>(id));
  if (ids.empty() && tokenizer.eos_id()) ids.push_back(*tokenizer.eos_id());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

int64_t ModelContextLength(const ModelConfig& config) {
  const int64_t trained = config.max_position_embeddings;
  if (trained <= 0) return 0;
  if (config.rope_scaling.type == RopeScalingType::kDynamic && config.rope_scaling.factor > 1.0) {
    const double scaled = static_cast<double>(trained) * config.rope_scaling.factor;
    return scaled >= 9.0e18 ? trained : static_cast<int64_t>(scaled);
  }
  return trained;
}

namespace {

Status AtLeast(const char* field, int64_t value, int64_t low) {
  if (value >= low) return Status::Ok();
  return InvalidArgument(std::string(field) + " must be >= " + std::to_string(low) + ", got " + std::to_string(value));
}

}  // namespace

Status ValidateEngineConfig(const EngineConfig& c) {
  if (c.backend != "cpu" && c.backend != "cpu-ref") {
    return InvalidArgument("backend must be \"cpu\" or \"cpu-ref\", got \"" + c.backend + "\"");
  }
  if (c.threads < 0 || c.threads > 1024) {
    return InvalidArgument("threads must be in [0, 1024], got " + std::to_string(c.threads));
  }
  if (c.page_size != 16 && c.page_size != 32 && c.page_size != 64 && c.page_size != 128) {
    return InvalidArgument("page_size must be 16, 32, 64 or 128, got " + std::to_string(c.page_size));
  }
  if (c.logical_page_size < 1 || c.page_size % c.logical_page_size != 0) {
    return InvalidArgument("logical_page_size " + std::to_string(c.logical_page_size) + " does not divide page_size " +
                           std::to_string(c.page_size));
  }
  LSERVE_RETURN_IF_ERROR(AtLeast("kv_cache_tokens", c.kv_cache_tokens, c.page_size));
  LSERVE_RETURN_IF_ERROR(AtLeast("max_model_len", c.max_model_len, 0));
  LSERVE_RETURN_IF_ERROR(AtLeast("max_running", c.max_running, 1));
  if (c.max_running > (int64_t{1} << 20)) {
    return InvalidArgument("max_running must be <= 2^20, got " + std::to_string(c.max_running));
  }
  // Every request waits (in the inbox) before it runs, so 0 would refuse all.
  LSERVE_RETURN_IF_ERROR(AtLeast("max_queued", c.max_queued, 1));
  LSERVE_RETURN_IF_ERROR(AtLeast("max_step_tokens", c.max_step_tokens, 1));
  LSERVE_RETURN_IF_ERROR(AtLeast("prefill_chunk", c.prefill_chunk, 1));
  if (c.streaming_ratio && !(*c.streaming_ratio >= 0.0 && *c.streaming_ratio <= 1.0)) {
    return InvalidArgument("streaming_ratio must be in [0, 1]");
  }
  if (c.attention != "dense" && c.attention != "lserve") {
    return InvalidArgument("attention must be \"dense\" or \"lserve\", got \"" + c.attention + "\"");
  }
  return Status::Ok();
}

Status OverrideRopeScaling(const std::string& type, double factor, ModelConfig* config) {
  if (type.empty()) return Status::Ok();
  RopeScaling r;
  if (type == "none") {
    r.type = RopeScalingType::kNone;
  } else if (type == "linear") {
    r.type = RopeScalingType::kLinear;
  } else if (type == "dynamic") {
    r.type = RopeScalingType::kDynamic;
  } else if (type == "yarn") {
    r.type = RopeScalingType::kYarn;
  } else {
    return InvalidArgument("rope scaling '" + type + "' is not none, linear, dynamic or yarn");
  }
  if (!(factor >= 1.0 && factor <= 1024.0)) return InvalidArgument("rope factor must be in [1, 1024]");
  r.factor = r.type == RopeScalingType::kNone ? 1.0 : factor;
  r.original_max_position_embeddings = config->max_position_embeddings;
  config->rope_scaling = r;
  if (r.type != RopeScalingType::kDynamic) {
    config->max_position_embeddings =
        static_cast<int64_t>(static_cast<double>(config->max_position_embeddings) * r.factor);
  }
  return config->Validate().Annotate("rope scaling");
}

}  // namespace lserve
