// Hugging Face config.json and generation_config.json -> ModelConfig.
//
// Interprets the files as transformers 5 does for LlamaForCausalLM,
// MistralForCausalLM and Qwen2ForCausalLM: the same per-architecture defaults
// for absent keys, the same type strictness (an integer field refuses 4096.0,
// true and "4096"), both RoPE conventions (transformers 4's `rope_scaling` +
// top-level `rope_theta`, and transformers 5's `rope_parameters`), with the
// same precedence. Unknown keys are ignored; `auto_map` is never acted on.
// Every error names the key it is about (RELIABILITY.md A6).
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "formats/model_config.h"

namespace lserve {

// Parses config.json and, when `generation_config_json` is not empty,
// generation_config.json, then runs ModelConfig::Validate().
Result<ModelConfig> ParseHfConfig(std::string_view config_json, std::string_view generation_config_json);

// Sampling defaults and special ids of generation_config.json. Null values
// count as absent. Value ranges are checked here; ids against the vocabulary
// by ModelConfig::Validate().
Result<GenerationDefaults> ParseGenerationConfig(std::string_view json);

// Parses a JSON document the way every model-folder reader here needs it:
// well-formed UTF-8, strict RFC 8259 (no NaN/Infinity literals, no comments),
// nesting at most 256 deep, and no object with the same key twice (Python's
// json keeps the last, nlohmann the last, other readers the first: a file that
// means different things to different readers is refused). `what` names the
// file in messages ("config.json"). Never throws.
Result<nlohmann::json> ParseJsonDocument(std::string_view text, std::string_view what);

}  // namespace lserve
