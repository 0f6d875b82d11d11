#include "formats/model_config.h"

#include <cmath>
#include <string>

#include "formats/message_text.h"

namespace lserve {

const char* ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kMistral: return "MistralForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
  }
  return "unknown";
}

const char* RopeScalingName(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kLlama3: return "llama3";
    case RopeScalingType::kDynamic: return "dynamic";
    case RopeScalingType::kYarn: return "yarn";
  }
  return "unknown";
}

namespace {

// Sanity caps: far above any released Llama-family model (Llama-3.1-405B:
// hidden 16384, intermediate 53248, 126 layers, 128 heads, vocab 128256) and
// low enough that every tensor size and the parameter count stay far from
// int64 overflow (2^24 * 2^20 per embedding, 2^22 * 2^20 per MLP matrix).
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxHidden = int64_t{1} << 20;
constexpr int64_t kMaxIntermediate = int64_t{1} << 22;
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxHeads = int64_t{1} << 16;
constexpr int64_t kMaxHeadDim = int64_t{1} << 12;
constexpr int64_t kMaxPositions = int64_t{1} << 26;

using formats_detail::Quoted;

Status OutOfRangeKey(std::string_view key, int64_t v, int64_t lo, int64_t hi) {
  return InvalidArgument(Quoted(key) + " = " + std::to_string(v) + " is outside [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

Status CheckRange(std::string_view key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return OutOfRangeKey(key, v, lo, hi);
  return Status::Ok();
}

Status CheckPositive(std::string_view key, double v) {
  if (!std::isfinite(v) || v <= 0)
    return InvalidArgument(Quoted(key) + " must be a finite number > 0, got " + std::to_string(v));
  return Status::Ok();
}

Status CheckTokenId(std::string_view key, int64_t id, int64_t vocab) {
  if (id < 0 || id >= vocab)
    return InvalidArgument(Quoted(key) + " " + std::to_string(id) + " is outside the vocabulary [0, " +
                           std::to_string(vocab) + ")");
  return Status::Ok();
}

Status ValidateRope(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  if (!std::isfinite(c.rope_theta) || c.rope_theta <= 1.0)
    return InvalidArgument("'rope_theta' must be a finite number > 1, got " + std::to_string(c.rope_theta));
  if (r.type == RopeScalingType::kNone) return Status::Ok();
  const std::string prefix = std::string("rope scaling '") + RopeScalingName(r.type) + "': ";
  auto annotate = [&](Status s) { return s.ok() ? s : InvalidArgument(prefix + s.message()); };
  LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("factor", r.factor)));
  // llama3 and yarn compute with it; linear and dynamic only carry it along.
  const bool needs_original = r.type == RopeScalingType::kLlama3 || r.type == RopeScalingType::kYarn;
  LSERVE_RETURN_IF_ERROR(annotate(CheckRange("original_max_position_embeddings", r.original_max_position_embeddings,
                                             needs_original ? 1 : 0, kMaxPositions)));
  switch (r.type) {
    case RopeScalingType::kLlama3:
      LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("low_freq_factor", r.low_freq_factor)));
      LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("high_freq_factor", r.high_freq_factor)));
      // Equal factors leave no interpolated band (transformers only warns);
      // a high factor below the low one inverts the bands.
      if (r.high_freq_factor < r.low_freq_factor)
        return InvalidArgument(prefix + "'high_freq_factor' " + std::to_string(r.high_freq_factor) +
                               " is below 'low_freq_factor' " + std::to_string(r.low_freq_factor));
      break;
    case RopeScalingType::kYarn:
      LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("beta_fast", r.beta_fast)));
      LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("beta_slow", r.beta_slow)));
      if (r.attention_factor.has_value())
        LSERVE_RETURN_IF_ERROR(annotate(CheckPositive("attention_factor", *r.attention_factor)));
      if (!std::isfinite(r.mscale) || !std::isfinite(r.mscale_all_dim))
        return InvalidArgument(prefix + "'mscale' and 'mscale_all_dim' must be finite");
      break;
    default: break;
  }
  return Status::Ok();
}

Status ValidateGenerationIds(const GenerationDefaults& g, int64_t vocab) {
  for (int64_t id : g.eos_token_ids) LSERVE_RETURN_IF_ERROR(CheckTokenId("generation eos_token_id", id, vocab));
  if (g.bos_token_id) LSERVE_RETURN_IF_ERROR(CheckTokenId("generation bos_token_id", *g.bos_token_id, vocab));
  if (g.pad_token_id) LSERVE_RETURN_IF_ERROR(CheckTokenId("generation pad_token_id", *g.pad_token_id, vocab));
  return Status::Ok();
}

}  // namespace

Status ModelConfig::Validate() const {
  LSERVE_RETURN_IF_ERROR(CheckRange("vocab_size", vocab_size, 1, kMaxVocab));
  LSERVE_RETURN_IF_ERROR(CheckRange("hidden_size", hidden_size, 1, kMaxHidden));
  LSERVE_RETURN_IF_ERROR(CheckRange("intermediate_size", intermediate_size, 1, kMaxIntermediate));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_hidden_layers", num_hidden_layers, 1, kMaxLayers));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_attention_heads", num_attention_heads, 1, kMaxHeads));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_key_value_heads", num_key_value_heads, 1, num_attention_heads));
  if (num_attention_heads % num_key_value_heads != 0)
    return InvalidArgument("'num_attention_heads' " + std::to_string(num_attention_heads) +
                           " is not a multiple of 'num_key_value_heads' " + std::to_string(num_key_value_heads));
  LSERVE_RETURN_IF_ERROR(CheckRange("head_dim", head_dim, 2, kMaxHeadDim));
  // rotate_half splits each head in two halves.
  if (head_dim % 2 != 0) return InvalidArgument("'head_dim' " + std::to_string(head_dim) + " must be even for RoPE");
  if (num_attention_heads * head_dim > kMaxHidden)
    return InvalidArgument("'num_attention_heads' x 'head_dim' = " + std::to_string(num_attention_heads * head_dim) +
                           " exceeds " + std::to_string(kMaxHidden));
  LSERVE_RETURN_IF_ERROR(CheckRange("max_position_embeddings", max_position_embeddings, 1, kMaxPositions));
  if (sliding_window.has_value())
    LSERVE_RETURN_IF_ERROR(CheckRange("sliding_window", *sliding_window, 1, kMaxPositions));
  if (!std::isfinite(rms_norm_eps) || rms_norm_eps <= 0 || rms_norm_eps > 1)
    return InvalidArgument("'rms_norm_eps' must be in (0, 1], got " + std::to_string(rms_norm_eps));
  if (hidden_act != "silu")
    return Unimplemented("'hidden_act' '" + hidden_act + "' is not supported (only silu)");
  LSERVE_RETURN_IF_ERROR(ValidateRope(*this));
  if (bos_token_id) LSERVE_RETURN_IF_ERROR(CheckTokenId("bos_token_id", *bos_token_id, vocab_size));
  for (int64_t id : eos_token_ids) LSERVE_RETURN_IF_ERROR(CheckTokenId("eos_token_id", id, vocab_size));
  if (pad_token_id) LSERVE_RETURN_IF_ERROR(CheckTokenId("pad_token_id", *pad_token_id, vocab_size));
  LSERVE_RETURN_IF_ERROR(generation.Validate());
  return ValidateGenerationIds(generation, vocab_size);
}

Status GenerationDefaults::Validate() const {
  auto bad = [](std::string_view key, std::string_view rule, double v) {
    return InvalidArgument("generation '" + std::string(key) + "' must be " + std::string(rule) + ", got " +
                           std::to_string(v));
  };
  auto finite = [](const std::optional<double>& v) { return !v.has_value() || std::isfinite(*v); };
  if (!finite(temperature) || (temperature && *temperature < 0)) return bad("temperature", ">= 0", *temperature);
  if (!finite(top_p) || (top_p && (*top_p < 0 || *top_p > 1))) return bad("top_p", "in [0, 1]", *top_p);
  if (top_k && *top_k < 0) return bad("top_k", ">= 0", static_cast<double>(*top_k));
  if (!finite(min_p) || (min_p && (*min_p < 0 || *min_p > 1))) return bad("min_p", "in [0, 1]", *min_p);
  if (!finite(repetition_penalty) || (repetition_penalty && *repetition_penalty <= 0))
    return bad("repetition_penalty", "> 0", *repetition_penalty);
  if (max_new_tokens && *max_new_tokens <= 0) return bad("max_new_tokens", "> 0", static_cast<double>(*max_new_tokens));
  return Status::Ok();
}

std::map<std::string, std::vector<int64_t>> ExpectedTensorShapes(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  const int64_t h = c.hidden_size;
  const int64_t q_dim = c.num_attention_heads * c.head_dim;
  const int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  const int64_t ff = c.intermediate_size;
  // LlamaAttention gives o_proj a bias with attention_bias; Qwen2Attention
  // has q/k/v biases and an o_proj without one.
  const bool o_bias = c.attention_bias && c.architecture == Architecture::kLlama;
  shapes["model.embed_tokens.weight"] = {c.vocab_size, h};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    shapes[p + "self_attn.q_proj.weight"] = {q_dim, h};
    shapes[p + "self_attn.k_proj.weight"] = {kv_dim, h};
    shapes[p + "self_attn.v_proj.weight"] = {kv_dim, h};
    shapes[p + "self_attn.o_proj.weight"] = {h, q_dim};
    if (c.attention_bias) {
      shapes[p + "self_attn.q_proj.bias"] = {q_dim};
      shapes[p + "self_attn.k_proj.bias"] = {kv_dim};
      shapes[p + "self_attn.v_proj.bias"] = {kv_dim};
    }
    if (o_bias) shapes[p + "self_attn.o_proj.bias"] = {h};
    shapes[p + "mlp.gate_proj.weight"] = {ff, h};
    shapes[p + "mlp.up_proj.weight"] = {ff, h};
    shapes[p + "mlp.down_proj.weight"] = {h, ff};
    if (c.mlp_bias) {
      shapes[p + "mlp.gate_proj.bias"] = {ff};
      shapes[p + "mlp.up_proj.bias"] = {ff};
      shapes[p + "mlp.down_proj.bias"] = {h};
    }
    shapes[p + "input_layernorm.weight"] = {h};
    shapes[p + "post_attention_layernorm.weight"] = {h};
  }
  shapes["model.norm.weight"] = {h};
  if (!c.tie_word_embeddings) shapes["lm_head.weight"] = {c.vocab_size, h};
  return shapes;
}

}  // namespace lserve
