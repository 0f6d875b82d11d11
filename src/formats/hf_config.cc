#include "formats/hf_config.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/utf8.h"

namespace lserve {
namespace {

using json = nlohmann::json;

constexpr int kMaxJsonDepth = 256;

// "float 4096.0", "string \"4096\"", "null": the offending value, shortened.
std::string Describe(const json& v) {
  if (v.is_null() || v.is_boolean()) return v.dump();
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return std::string(v.type_name()) + " " + text;
}

Status KeyError(std::string_view where, std::string_view key, const std::string& what) {
  return InvalidArgument(std::string(where) + ": '" + std::string(key) + "' " + what);
}

const json* Find(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// Integer fields accept JSON integers only, as transformers' strict config
// classes do (4096.0, true and "4096" are refused).
Result<int64_t> AsInt(const json& v, std::string_view where, std::string_view key) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return KeyError(where, key, "is out of range (" + v.dump() + ")");
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return KeyError(where, key, "must be an integer, got " + Describe(v));
}

// Float fields accept any JSON number, integers included. Non-finite values
// cannot come from the parser (NaN and Infinity are not JSON; 1e400 is refused
// as a number overflow, where Python would read inf); the check guards the
// invariant anyway.
Result<double> AsFloat(const json& v, std::string_view where, std::string_view key) {
  if (!v.is_number()) return KeyError(where, key, "must be a number, got " + Describe(v));
  const double d = v.get<double>();
  if (!std::isfinite(d)) return KeyError(where, key, "must be finite, got " + v.dump());
  return d;
}

Result<bool> AsBool(const json& v, std::string_view where, std::string_view key) {
  if (!v.is_boolean()) return KeyError(where, key, "must be true or false, got " + Describe(v));
  return v.get<bool>();
}

Result<std::string> AsString(const json& v, std::string_view where, std::string_view key) {
  if (!v.is_string()) return KeyError(where, key, "must be a string, got " + Describe(v));
  return v.get<std::string>();
}

// The value of `key`, nullopt when absent, or when null and `null_ok`.
Result<std::optional<int64_t>> OptInt(const json& obj, std::string_view where, std::string_view key,
                                      bool null_ok) {
  const json* v = Find(obj, key);
  if (v == nullptr || (v->is_null() && null_ok)) return std::optional<int64_t>();
  LSERVE_ASSIGN_OR_RETURN(int64_t i, AsInt(*v, where, key));
  return std::optional<int64_t>(i);
}

Result<std::optional<double>> OptFloat(const json& obj, std::string_view where, std::string_view key,
                                       bool null_ok) {
  const json* v = Find(obj, key);
  if (v == nullptr || (v->is_null() && null_ok)) return std::optional<double>();
  LSERVE_ASSIGN_OR_RETURN(double d, AsFloat(*v, where, key));
  return std::optional<double>(d);
}

Result<std::optional<bool>> OptBool(const json& obj, std::string_view where, std::string_view key,
                                    bool null_ok) {
  const json* v = Find(obj, key);
  if (v == nullptr || (v->is_null() && null_ok)) return std::optional<bool>();
  LSERVE_ASSIGN_OR_RETURN(bool b, AsBool(*v, where, key));
  return std::optional<bool>(b);
}

// eos_token_id: an integer, a list of integers, or null.
Result<std::vector<int64_t>> TokenIdList(const json& v, std::string_view where, std::string_view key) {
  std::vector<int64_t> ids;
  if (v.is_null()) return ids;
  if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_number_integer())
        return KeyError(where, key, "must be an integer or a list of integers, got an element " + Describe(e));
      LSERVE_ASSIGN_OR_RETURN(int64_t id, AsInt(e, where, key));
      ids.push_back(id);
    }
    return ids;
  }
  if (!v.is_number_integer())
    return KeyError(where, key, "must be an integer or a list of integers, got " + Describe(v));
  LSERVE_ASSIGN_OR_RETURN(int64_t id, AsInt(v, where, key));
  ids.push_back(id);
  return ids;
}

// Defaults of the transformers 5.24 configuration classes for keys that a
// config.json leaves out (configuration_llama.py, _mistral.py, _qwen2.py).
struct ArchitectureDefaults {
  int64_t vocab_size;
  int64_t hidden_size;
  int64_t intermediate_size;
  int64_t num_hidden_layers;
  int64_t num_attention_heads;
  std::optional<int64_t> num_key_value_heads;  // nullopt: same as num_attention_heads
  bool num_key_value_heads_nullable;           // MistralConfig types it `int`, the others `int | None`
  int64_t max_position_embeddings;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
};

ArchitectureDefaults DefaultsFor(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return {32000, 4096, 11008, 32, 32, std::nullopt, true, 2048, 1, 2};
    case Architecture::kMistral: return {32000, 4096, 14336, 32, 32, 8, false, 4096 * 32, 1, 2};
    case Architecture::kQwen2: return {151936, 4096, 22016, 32, 32, 32, true, 32768, std::nullopt, std::nullopt};
  }
  return {};
}

struct KnownArchitecture {
  std::string_view model_type;
  std::string_view class_name;
  Architecture architecture;
};
constexpr KnownArchitecture kKnownArchitectures[] = {
    {"llama", "LlamaForCausalLM", Architecture::kLlama},
    {"mistral", "MistralForCausalLM", Architecture::kMistral},
    {"qwen2", "Qwen2ForCausalLM", Architecture::kQwen2},
};

// transformers picks the configuration class (and so the model class) from
// model_type; `architectures` only decides when model_type is absent.
Status ResolveArchitecture(const json& root, ModelConfig* cfg) {
  std::optional<std::string> model_type;
  if (const json* v = Find(root, "model_type"); v != nullptr && !v->is_null()) {
    LSERVE_ASSIGN_OR_RETURN(model_type, AsString(*v, "config.json", "model_type"));
  }
  std::vector<std::string> classes;
  if (const json* v = Find(root, "architectures"); v != nullptr && !v->is_null()) {
    if (!v->is_array())
      return KeyError("config.json", "architectures", "must be a list of strings, got " + Describe(*v));
    for (const json& e : *v) {
      if (!e.is_string())
        return KeyError("config.json", "architectures", "must be a list of strings, got an element " + Describe(e));
      classes.push_back(e.get<std::string>());
    }
  }
  if (model_type.has_value() && !model_type->empty()) {
    for (const auto& k : kKnownArchitectures) {
      if (*model_type == k.model_type) {
        cfg->architecture = k.architecture;
        cfg->model_type = std::string(k.model_type);
        return Status::Ok();
      }
    }
    return Unimplemented("config.json: model_type '" + *model_type +
                         "' is not supported (supported: llama, mistral, qwen2)");
  }
  for (const std::string& c : classes) {
    for (const auto& k : kKnownArchitectures) {
      if (c == k.class_name) {
        cfg->architecture = k.architecture;
        cfg->model_type = std::string(k.model_type);
        return Status::Ok();
      }
    }
  }
  if (classes.empty()) return InvalidArgument("config.json: neither 'model_type' nor 'architectures' is given");
  return Unimplemented("config.json: architecture '" + classes.front() +
                       "' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
}

// RoPE, as RotaryEmbeddingConfigMixin.convert_rope_params_to_dict and
// standardize_rope_params build it:
//  - a non-empty `rope_scaling` object wins over `rope_parameters`;
//  - the chosen object's own rope_theta wins over the top-level rope_theta,
//    which defaults to 10000;
//  - the type is "rope_type", else the legacy "type", else "default";
//  - for llama3 and yarn, original_max_position_embeddings is a top-level key
//    of that name if there is one, else the object's, else
//    max_position_embeddings.
// Validation mirrors the _validate_*_rope_parameters functions for what they
// raise on (missing required keys) and also refuses what they only warn about
// but cannot run (a non-numeric or non-positive factor, an unknown type).
Status ParseRope(const json& root, ModelConfig* cfg) {
  const json* params = nullptr;
  std::string where;
  if (const json* v = Find(root, "rope_scaling"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) return KeyError("config.json", "rope_scaling", "must be an object, got " + Describe(*v));
    if (!v->empty()) {
      params = v;
      where = "config.json rope_scaling";
    }
  }
  if (params == nullptr) {
    if (const json* v = Find(root, "rope_parameters"); v != nullptr && !v->is_null()) {
      if (!v->is_object()) return KeyError("config.json", "rope_parameters", "must be an object, got " + Describe(*v));
      params = v;
      where = "config.json rope_parameters";
    }
  }

  double theta = 10000.0;
  if (const json* v = Find(root, "rope_theta")) {
    LSERVE_ASSIGN_OR_RETURN(theta, AsFloat(*v, "config.json", "rope_theta"));
  }
  std::optional<double> partial_rotary_factor;
  LSERVE_ASSIGN_OR_RETURN(partial_rotary_factor, OptFloat(root, "config.json", "partial_rotary_factor", true));
  RopeScaling rope;
  if (params != nullptr) {
    if (params->contains("full_attention") || params->contains("sliding_attention"))
      return Unimplemented(where + ": per-layer-type RoPE parameters are not supported");
    if (const json* v = Find(*params, "rope_theta")) {
      LSERVE_ASSIGN_OR_RETURN(theta, AsFloat(*v, where, "rope_theta"));
    }
    std::optional<double> inner_partial;
    LSERVE_ASSIGN_OR_RETURN(inner_partial, OptFloat(*params, where, "partial_rotary_factor", true));
    if (inner_partial.has_value()) partial_rotary_factor = inner_partial;

    std::string type = "default";
    if (const json* v = Find(*params, "rope_type")) {
      LSERVE_ASSIGN_OR_RETURN(type, AsString(*v, where, "rope_type"));
    } else if (const json* t = Find(*params, "type")) {
      LSERVE_ASSIGN_OR_RETURN(type, AsString(*t, where, "type"));
    }

    auto required = [&](std::string_view key) -> Result<const json*> {
      const json* v = Find(*params, key);
      if (v == nullptr) return KeyError(where, key, "is required for rope type '" + type + "'");
      return v;
    };
    auto required_float = [&](std::string_view key) -> Result<double> {
      LSERVE_ASSIGN_OR_RETURN(const json* v, required(key));
      return AsFloat(*v, where, key);
    };
    // llama3 / yarn: original_max_position_embeddings (see above).
    auto original_max = [&]() -> Result<int64_t> {
      if (const json* v = Find(root, "original_max_position_embeddings"))
        return AsInt(*v, "config.json", "original_max_position_embeddings");
      if (const json* v = Find(*params, "original_max_position_embeddings"))
        return AsInt(*v, where, "original_max_position_embeddings");
      return cfg->max_position_embeddings;
    };

    if (type == "default") {
      rope.type = RopeScalingType::kNone;
    } else if (type == "linear" || type == "dynamic") {
      rope.type = type == "linear" ? RopeScalingType::kLinear : RopeScalingType::kDynamic;
      LSERVE_ASSIGN_OR_RETURN(rope.factor, required_float("factor"));
      std::optional<int64_t> orig;
      LSERVE_ASSIGN_OR_RETURN(orig, OptInt(*params, where, "original_max_position_embeddings", true));
      rope.original_max_position_embeddings = orig.value_or(0);
    } else if (type == "llama3") {
      rope.type = RopeScalingType::kLlama3;
      LSERVE_ASSIGN_OR_RETURN(rope.factor, required_float("factor"));
      LSERVE_ASSIGN_OR_RETURN(rope.low_freq_factor, required_float("low_freq_factor"));
      LSERVE_ASSIGN_OR_RETURN(rope.high_freq_factor, required_float("high_freq_factor"));
      LSERVE_ASSIGN_OR_RETURN(rope.original_max_position_embeddings, original_max());
    } else if (type == "yarn") {
      rope.type = RopeScalingType::kYarn;
      LSERVE_ASSIGN_OR_RETURN(rope.original_max_position_embeddings, original_max());
      LSERVE_ASSIGN_OR_RETURN(const json* factor, required("factor"));
      if (factor->is_null()) {
        // _compute_yarn_parameters: factor = max_position_embeddings / original.
        if (rope.original_max_position_embeddings <= 0)
          return KeyError(where, "original_max_position_embeddings", "must be positive");
        rope.factor = static_cast<double>(cfg->max_position_embeddings) /
                      static_cast<double>(rope.original_max_position_embeddings);
      } else {
        LSERVE_ASSIGN_OR_RETURN(rope.factor, AsFloat(*factor, where, "factor"));
      }
      // `rope_parameters.get("beta_fast") or 32`: null and 0 mean the default.
      std::optional<double> beta;
      LSERVE_ASSIGN_OR_RETURN(beta, OptFloat(*params, where, "beta_fast", true));
      rope.beta_fast = beta.value_or(0.0) != 0.0 ? *beta : 32.0;
      LSERVE_ASSIGN_OR_RETURN(beta, OptFloat(*params, where, "beta_slow", true));
      rope.beta_slow = beta.value_or(0.0) != 0.0 ? *beta : 1.0;
      LSERVE_ASSIGN_OR_RETURN(rope.attention_factor, OptFloat(*params, where, "attention_factor", true));
      std::optional<double> m;
      LSERVE_ASSIGN_OR_RETURN(m, OptFloat(*params, where, "mscale", true));
      rope.mscale = m.value_or(0.0);
      LSERVE_ASSIGN_OR_RETURN(m, OptFloat(*params, where, "mscale_all_dim", true));
      rope.mscale_all_dim = m.value_or(0.0);
      std::optional<bool> truncate;
      LSERVE_ASSIGN_OR_RETURN(truncate, OptBool(*params, where, "truncate", true));
      rope.truncate = truncate.value_or(true);
    } else if (type == "longrope" || type == "proportional" || type == "axial") {
      return Unimplemented(where + ": rope type '" + type +
                           "' is not supported (supported: default, linear, dynamic, yarn, llama3)");
    } else {
      return KeyError(where, "rope_type", "has the unknown value '" + type + "'");
    }
  }
  if (partial_rotary_factor.has_value() && *partial_rotary_factor != 1.0)
    return Unimplemented("config.json: 'partial_rotary_factor' " + std::to_string(*partial_rotary_factor) +
                         " is not supported (only 1.0)");
  cfg->rope_theta = theta;
  cfg->rope_scaling = rope;
  return Status::Ok();
}

// The torch dtype names transformers accepts for torch_dtype / dtype
// (getattr(torch, name)) that make sense for weights.
Result<std::string> NormalizeTorchDtype(const std::string& name, std::string_view key) {
  if (name == "bfloat16") return std::string("bfloat16");
  if (name == "float16" || name == "half") return std::string("float16");
  if (name == "float32" || name == "float") return std::string("float32");
  if (name == "float64" || name == "double") return std::string("float64");
  if (name == "auto") return std::string();
  return KeyError("config.json", key, "names an unknown floating-point dtype '" + name + "'");
}

Status ParseTokenIds(const json& root, const ArchitectureDefaults& d, ModelConfig* cfg) {
  cfg->bos_token_id = d.bos_token_id;
  if (root.contains("bos_token_id")) {
    LSERVE_ASSIGN_OR_RETURN(cfg->bos_token_id, OptInt(root, "config.json", "bos_token_id", true));
  }
  cfg->eos_token_ids.clear();
  if (d.eos_token_id.has_value()) cfg->eos_token_ids.push_back(*d.eos_token_id);
  if (const json* v = Find(root, "eos_token_id")) {
    LSERVE_ASSIGN_OR_RETURN(cfg->eos_token_ids, TokenIdList(*v, "config.json", "eos_token_id"));
  }
  LSERVE_ASSIGN_OR_RETURN(cfg->pad_token_id, OptInt(root, "config.json", "pad_token_id", true));
  return Status::Ok();
}

Status ParseConfigObject(const json& root, ModelConfig* cfg) {
  if (!root.is_object()) return InvalidArgument("config.json: the top level must be an object, got " + Describe(root));
  LSERVE_RETURN_IF_ERROR(ResolveArchitecture(root, cfg));
  const Architecture arch = cfg->architecture;
  const ArchitectureDefaults d = DefaultsFor(arch);
  constexpr std::string_view kWhere = "config.json";

  if (const json* q = Find(root, "quantization_config"); q != nullptr && !q->is_null())
    return Unimplemented("config.json: 'quantization_config' is present; quantized Hugging Face checkpoints "
                         "are not supported (use the unquantized weights or a GGUF file)");

  auto int_or = [&](std::string_view key, int64_t def) -> Result<int64_t> {
    LSERVE_ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(root, kWhere, key, false));
    return v.value_or(def);
  };
  LSERVE_ASSIGN_OR_RETURN(cfg->vocab_size, int_or("vocab_size", d.vocab_size));
  LSERVE_ASSIGN_OR_RETURN(cfg->hidden_size, int_or("hidden_size", d.hidden_size));
  LSERVE_ASSIGN_OR_RETURN(cfg->intermediate_size, int_or("intermediate_size", d.intermediate_size));
  LSERVE_ASSIGN_OR_RETURN(cfg->num_hidden_layers, int_or("num_hidden_layers", d.num_hidden_layers));
  LSERVE_ASSIGN_OR_RETURN(cfg->num_attention_heads, int_or("num_attention_heads", d.num_attention_heads));
  LSERVE_ASSIGN_OR_RETURN(cfg->max_position_embeddings, int_or("max_position_embeddings", d.max_position_embeddings));
  // Checked here already because head_dim is derived from them below.
  if (cfg->hidden_size <= 0)
    return KeyError(kWhere, "hidden_size", "must be positive, got " + std::to_string(cfg->hidden_size));
  if (cfg->num_attention_heads <= 0)
    return KeyError(kWhere, "num_attention_heads", "must be positive, got " + std::to_string(cfg->num_attention_heads));

  // num_key_value_heads: absent -> the class default; null -> one KV head per
  // query head (MHA), except that MistralConfig refuses null.
  const json* kv = Find(root, "num_key_value_heads");
  if (kv == nullptr) {
    cfg->num_key_value_heads = d.num_key_value_heads.value_or(cfg->num_attention_heads);
  } else if (kv->is_null() && d.num_key_value_heads_nullable) {
    cfg->num_key_value_heads = cfg->num_attention_heads;
  } else {
    LSERVE_ASSIGN_OR_RETURN(cfg->num_key_value_heads, AsInt(*kv, kWhere, "num_key_value_heads"));
  }

  // head_dim: explicit, or hidden_size // num_attention_heads when absent or
  // null. A derived head_dim needs the division to be exact; LlamaConfig's
  // validate_architecture demands it even when head_dim is explicit.
  LSERVE_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, OptInt(root, kWhere, "head_dim", true));
  const bool hidden_divides = cfg->hidden_size % cfg->num_attention_heads == 0;
  if ((!head_dim.has_value() || arch == Architecture::kLlama) && !hidden_divides)
    return InvalidArgument("config.json: 'hidden_size' " + std::to_string(cfg->hidden_size) +
                           " is not a multiple of 'num_attention_heads' " + std::to_string(cfg->num_attention_heads));
  cfg->head_dim = head_dim.value_or(cfg->hidden_size / cfg->num_attention_heads);

  LSERVE_ASSIGN_OR_RETURN(std::optional<double> eps, OptFloat(root, kWhere, "rms_norm_eps", false));
  cfg->rms_norm_eps = eps.value_or(1e-6);
  LSERVE_ASSIGN_OR_RETURN(std::optional<bool> tie, OptBool(root, kWhere, "tie_word_embeddings", false));
  cfg->tie_word_embeddings = tie.value_or(false);

  // Biases: LlamaConfig has attention_bias (q/k/v/o) and mlp_bias; Qwen2's
  // attention always has q/k/v biases and never an o bias; Mistral has none.
  // A key the class does not define is ignored, as transformers ignores it.
  cfg->attention_bias = false;
  cfg->mlp_bias = false;
  if (arch == Architecture::kLlama) {
    LSERVE_ASSIGN_OR_RETURN(std::optional<bool> b, OptBool(root, kWhere, "attention_bias", false));
    cfg->attention_bias = b.value_or(false);
    LSERVE_ASSIGN_OR_RETURN(b, OptBool(root, kWhere, "mlp_bias", false));
    cfg->mlp_bias = b.value_or(false);
  } else if (arch == Architecture::kQwen2) {
    cfg->attention_bias = true;
  }

  // sliding_window: MistralConfig default 4096 (null = none); Qwen2 only when
  // use_sliding_window (default false); LlamaConfig has none.
  cfg->sliding_window.reset();
  if (arch == Architecture::kMistral || arch == Architecture::kQwen2) {
    const json* sw = Find(root, "sliding_window");
    std::optional<int64_t> window = 4096;
    if (sw != nullptr) {
      if (sw->is_null()) {
        window.reset();
      } else {
        LSERVE_ASSIGN_OR_RETURN(window, AsInt(*sw, kWhere, "sliding_window"));
      }
    }
    bool use = true;
    if (arch == Architecture::kQwen2) {
      LSERVE_ASSIGN_OR_RETURN(std::optional<bool> u, OptBool(root, kWhere, "use_sliding_window", false));
      use = u.value_or(false);
    }
    if (use) cfg->sliding_window = window;
  }

  cfg->hidden_act = "silu";
  if (const json* v = Find(root, "hidden_act")) {
    LSERVE_ASSIGN_OR_RETURN(cfg->hidden_act, AsString(*v, kWhere, "hidden_act"));
    if (cfg->hidden_act == "swish") cfg->hidden_act = "silu";  // ACT2FN maps both to SiLU
  }

  // `dtype` (transformers 5) wins over the older `torch_dtype`.
  cfg->torch_dtype.clear();
  for (std::string_view key : {"torch_dtype", "dtype"}) {
    if (const json* v = Find(root, key); v != nullptr && !v->is_null()) {
      LSERVE_ASSIGN_OR_RETURN(std::string name, AsString(*v, kWhere, key));
      LSERVE_ASSIGN_OR_RETURN(cfg->torch_dtype, NormalizeTorchDtype(name, key));
    }
  }

  LSERVE_RETURN_IF_ERROR(ParseRope(root, cfg));
  LSERVE_RETURN_IF_ERROR(ParseTokenIds(root, d, cfg));
  return Status::Ok();
}

Status ParseGenerationObject(const json& root, GenerationDefaults* g) {
  constexpr std::string_view kWhere = "generation_config.json";
  if (!root.is_object())
    return InvalidArgument("generation_config.json: the top level must be an object, got " + Describe(root));
  LSERVE_ASSIGN_OR_RETURN(g->temperature, OptFloat(root, kWhere, "temperature", true));
  LSERVE_ASSIGN_OR_RETURN(g->top_p, OptFloat(root, kWhere, "top_p", true));
  LSERVE_ASSIGN_OR_RETURN(g->top_k, OptInt(root, kWhere, "top_k", true));
  LSERVE_ASSIGN_OR_RETURN(g->min_p, OptFloat(root, kWhere, "min_p", true));
  LSERVE_ASSIGN_OR_RETURN(g->repetition_penalty, OptFloat(root, kWhere, "repetition_penalty", true));
  LSERVE_ASSIGN_OR_RETURN(g->max_new_tokens, OptInt(root, kWhere, "max_new_tokens", true));
  LSERVE_ASSIGN_OR_RETURN(g->do_sample, OptBool(root, kWhere, "do_sample", true));
  LSERVE_ASSIGN_OR_RETURN(g->bos_token_id, OptInt(root, kWhere, "bos_token_id", true));
  LSERVE_ASSIGN_OR_RETURN(g->pad_token_id, OptInt(root, kWhere, "pad_token_id", true));
  g->eos_token_ids.clear();
  if (const json* v = Find(root, "eos_token_id")) {
    LSERVE_ASSIGN_OR_RETURN(g->eos_token_ids, TokenIdList(*v, kWhere, "eos_token_id"));
  }

  return g->Validate().Annotate("generation_config.json");
}

}  // namespace

Result<nlohmann::json> ParseJsonDocument(std::string_view text, std::string_view what) {
  if (!utf8::IsValid(text)) return InvalidArgument(std::string(what) + ": not valid UTF-8");
  // nlohmann's lexer takes a raw NUL for the end of the input and would
  // ignore what follows; JSON has no raw NUL bytes.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    return InvalidArgument(std::string(what) + ": invalid JSON: a NUL byte at byte " + std::to_string(nul));
  // Open containers, innermost last; objects carry the keys seen so far.
  struct Container {
    bool is_object;
    std::unordered_set<std::string> keys;
  };
  std::vector<Container> open;
  std::string error;
  std::string last_key;  // locates syntax errors: the value after it failed
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (!error.empty()) return false;
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          error = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels";
          return false;
        }
        open.push_back({event == json::parse_event_t::object_start, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && open.back().is_object && parsed.is_string()) {
          last_key = parsed.get<std::string>();
          if (!open.back().keys.insert(last_key).second) {
            error = "duplicate key \"" + parsed.get<std::string>() + "\"";
            return false;
          }
        }
        break;
      case json::parse_event_t::value: break;
    }
    return true;
  };
  try {
    json doc = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                           /*ignore_comments=*/false);
    if (!error.empty()) return InvalidArgument(std::string(what) + ": " + error);
    if (doc.is_discarded()) return InvalidArgument(std::string(what) + ": invalid JSON");
    return doc;
  } catch (const json::exception& e) {
    if (!error.empty()) return InvalidArgument(std::string(what) + ": " + error);
    std::string msg = std::string(what) + ": invalid JSON: " + e.what();
    if (!last_key.empty()) msg += " (after key '" + last_key + "')";
    return InvalidArgument(msg);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string(what) + ": cannot parse: " + e.what());
  }
}

Result<GenerationDefaults> ParseGenerationConfig(std::string_view text) {
  LSERVE_ASSIGN_OR_RETURN(json doc, ParseJsonDocument(text, "generation_config.json"));
  GenerationDefaults g;
  LSERVE_RETURN_IF_ERROR(ParseGenerationObject(doc, &g));
  return g;
}

Result<ModelConfig> ParseHfConfig(std::string_view config_json, std::string_view generation_config_json) {
  LSERVE_ASSIGN_OR_RETURN(json doc, ParseJsonDocument(config_json, "config.json"));
  ModelConfig cfg;
  LSERVE_RETURN_IF_ERROR(ParseConfigObject(doc, &cfg));
  if (!generation_config_json.empty()) {
    LSERVE_ASSIGN_OR_RETURN(cfg.generation, ParseGenerationConfig(generation_config_json));
  }
  LSERVE_RETURN_IF_ERROR(cfg.Validate());
  return cfg;
}

}  // namespace lserve
