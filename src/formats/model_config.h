// ModelConfig: everything the engine needs to know about a Llama-family
// checkpoint, whatever file it came from (HF config.json or GGUF metadata).
// Filled by formats/hf_config.h or formats/gguf_model.h; checked by Validate()
// before any weight is touched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace lserve {

enum class Architecture { kLlama, kMistral, kQwen2 };
const char* ArchitectureName(Architecture a);  // "LlamaForCausalLM", ...

enum class RopeScalingType { kNone, kLinear, kLlama3, kDynamic, kYarn };
const char* RopeScalingName(RopeScalingType t);  // "none", "linear", "llama3", "dynamic", "yarn"

// rope_scaling as transformers reads it (modeling_rope_utils.py). Fields not
// used by a type keep their defaults.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;  // llama3, yarn, dynamic (0 = not given)
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;  // yarn / mscale override
  double mscale = 0.0;                     // yarn (0 = unset)
  double mscale_all_dim = 0.0;             // yarn (0 = unset)
  bool truncate = true;                    // yarn
};

// Sampling defaults from generation_config.json (all optional).
struct GenerationDefaults {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
  std::optional<bool> do_sample;
  std::vector<int64_t> eos_token_ids;  // overrides config's eos when non-empty
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;

  // The value ranges transformers' logits processors accept (temperature >= 0,
  // top_p and min_p in [0, 1], top_k >= 0, repetition_penalty > 0,
  // max_new_tokens > 0). Token ids are checked by ModelConfig::Validate.
  Status Validate() const;
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  std::string model_type;  // "llama", "mistral", "qwen2" (as config.json says)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // == num_attention_heads for MHA
  int64_t head_dim = 0;             // hidden_size / num_attention_heads unless given
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2: true)
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  std::optional<int64_t> sliding_window;  // Mistral / Qwen2; informative only
  std::string hidden_act = "silu";
  std::string torch_dtype;  // "bfloat16", "float16", "float32", "float64" or ""

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id (int or list)
  std::optional<int64_t> pad_token_id;

  GenerationDefaults generation;

  // Number of query heads per KV head.
  int64_t gqa_group() const { return num_key_value_heads ? num_attention_heads / num_key_value_heads : 0; }

  // Rejects values the engine cannot run or that are inconsistent
  // (RELIABILITY.md A6): non-positive or absurd sizes, heads not dividing,
  // bad rope parameters, token ids outside the vocabulary.
  Status Validate() const;
};

}  // namespace lserve

#include <map>

namespace lserve {

// The parameter names and shapes (HF naming, torch order) that a checkpoint
// of `config` must contain, e.g. "model.embed_tokens.weight" ->
// {vocab_size, hidden_size}. Includes "lm_head.weight" only when the
// embeddings are not tied, and the q/k/v biases when attention_bias is set.
std::map<std::string, std::vector<int64_t>> ExpectedTensorShapes(const ModelConfig& config);

}  // namespace lserve
