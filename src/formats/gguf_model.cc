#include "formats/gguf_model.h"

#include <charconv>
#include <cstring>
#include <map>
#include <string>
#include <utility>

namespace lserve {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Optional metadata: nullopt when the key is absent, an error when it is
// present with a wrong type.
template <typename T, typename Getter>
Result<std::optional<T>> Optional(const GgufFile& f, const std::string& key, Getter get) {
  if (f.Find(key) == nullptr) return std::optional<T>();
  auto r = (f.*get)(key);
  if (!r.ok()) return r.status();
  return std::optional<T>(std::move(r).value());
}

Result<std::optional<int64_t>> OptInt(const GgufFile& f, const std::string& key) {
  return Optional<int64_t>(f, key, &GgufFile::GetInt);
}
Result<std::optional<double>> OptFloat(const GgufFile& f, const std::string& key) {
  return Optional<double>(f, key, &GgufFile::GetFloat);
}
Result<std::optional<std::string>> OptString(const GgufFile& f, const std::string& key) {
  return Optional<std::string>(f, key, &GgufFile::GetString);
}

Result<int64_t> RequiredInt(const GgufFile& f, const std::string& key) {
  auto r = f.GetInt(key);
  if (!r.ok() && r.status().code() == StatusCode::kNotFound)
    return InvalidArgument("required GGUF metadata key '" + key + "' is missing");
  return r;
}

Result<double> RequiredFloat(const GgufFile& f, const std::string& key) {
  auto r = f.GetFloat(key);
  if (!r.ok() && r.status().code() == StatusCode::kNotFound)
    return InvalidArgument("required GGUF metadata key '" + key + "' is missing");
  return r;
}

// rope.scaling.* as llama.cpp writes it. llama3 scaling is not among the
// types: it arrives as the rope_freqs tensor (see gguf_model.h).
Status ReadRopeScaling(const GgufFile& f, const std::string& arch, ModelConfig& c) {
  const std::string p = arch + ".rope.";
  LSERVE_ASSIGN_OR_RETURN(auto type, OptString(f, p + "scaling.type"));
  LSERVE_ASSIGN_OR_RETURN(auto factor, OptFloat(f, p + "scaling.factor"));
  LSERVE_ASSIGN_OR_RETURN(auto orig_ctx, OptInt(f, p + "scaling.original_context_length"));
  LSERVE_ASSIGN_OR_RETURN(auto scale_linear, OptFloat(f, p + "scale_linear"));  // older files
  if (!type) {
    if (scale_linear && *scale_linear != 1.0) {
      c.rope_scaling.type = RopeScalingType::kLinear;
      c.rope_scaling.factor = *scale_linear;
    }
    return Status::Ok();
  }
  if (*type == "none") return Status::Ok();
  if (*type == "linear") {
    c.rope_scaling.type = RopeScalingType::kLinear;
  } else if (*type == "yarn") {
    c.rope_scaling.type = RopeScalingType::kYarn;
    LSERVE_ASSIGN_OR_RETURN(auto beta_fast, OptFloat(f, p + "scaling.yarn_beta_fast"));
    LSERVE_ASSIGN_OR_RETURN(auto beta_slow, OptFloat(f, p + "scaling.yarn_beta_slow"));
    if (beta_fast) c.rope_scaling.beta_fast = *beta_fast;
    if (beta_slow) c.rope_scaling.beta_slow = *beta_slow;
  } else {
    return Unimplemented("GGUF rope scaling type '" + *type + "' is not supported (none, linear, yarn)");
  }
  if (!factor) return InvalidArgument("GGUF rope scaling '" + *type + "' needs " + p + "scaling.factor");
  c.rope_scaling.factor = *factor;
  if (orig_ctx) c.rope_scaling.original_max_position_embeddings = *orig_ctx;
  return Status::Ok();
}

Status ReadGenerationDefaults(const GgufFile& f, GenerationDefaults& g) {
  LSERVE_ASSIGN_OR_RETURN(g.top_k, OptInt(f, "general.sampling.top_k"));
  LSERVE_ASSIGN_OR_RETURN(g.top_p, OptFloat(f, "general.sampling.top_p"));
  LSERVE_ASSIGN_OR_RETURN(g.min_p, OptFloat(f, "general.sampling.min_p"));
  LSERVE_ASSIGN_OR_RETURN(g.temperature, OptFloat(f, "general.sampling.temp"));
  LSERVE_ASSIGN_OR_RETURN(g.repetition_penalty, OptFloat(f, "general.sampling.penalty_repeat"));
  return Status::Ok();
}

Result<ModelConfig> ReadConfig(const GgufFile& f) {
  ModelConfig c;
  LSERVE_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  if (arch == "llama") {
    c.architecture = Architecture::kLlama;
  } else if (arch == "qwen2") {
    c.architecture = Architecture::kQwen2;
    c.attention_bias = true;
  } else {
    return Unimplemented("GGUF architecture '" + arch + "' is not supported (llama, qwen2)");
  }
  c.model_type = arch;
  const std::string p = arch + ".";

  LSERVE_ASSIGN_OR_RETURN(c.hidden_size, RequiredInt(f, p + "embedding_length"));
  LSERVE_ASSIGN_OR_RETURN(c.num_hidden_layers, RequiredInt(f, p + "block_count"));
  LSERVE_ASSIGN_OR_RETURN(c.intermediate_size, RequiredInt(f, p + "feed_forward_length"));
  LSERVE_ASSIGN_OR_RETURN(c.num_attention_heads, RequiredInt(f, p + "attention.head_count"));
  LSERVE_ASSIGN_OR_RETURN(c.max_position_embeddings, RequiredInt(f, p + "context_length"));
  LSERVE_ASSIGN_OR_RETURN(c.rms_norm_eps, RequiredFloat(f, p + "attention.layer_norm_rms_epsilon"));
  LSERVE_ASSIGN_OR_RETURN(auto kv_heads, OptInt(f, p + "attention.head_count_kv"));
  c.num_key_value_heads = kv_heads.value_or(c.num_attention_heads);
  LSERVE_ASSIGN_OR_RETURN(auto theta, OptFloat(f, p + "rope.freq_base"));
  c.rope_theta = theta.value_or(10000.0);  // llama.cpp's default

  // head_dim: attention.key_length, else hidden / heads (llama.cpp's rule).
  LSERVE_ASSIGN_OR_RETURN(auto key_length, OptInt(f, p + "attention.key_length"));
  LSERVE_ASSIGN_OR_RETURN(auto value_length, OptInt(f, p + "attention.value_length"));
  LSERVE_ASSIGN_OR_RETURN(auto rope_dims, OptInt(f, p + "rope.dimension_count"));
  if (key_length) {
    c.head_dim = *key_length;
  } else if (c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0) {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  } else {
    return InvalidArgument("GGUF " + p + "embedding_length " + std::to_string(c.hidden_size) +
                           " is not a multiple of " + p + "attention.head_count " +
                           std::to_string(c.num_attention_heads) + " and " + p +
                           "attention.key_length is not given");
  }
  if (value_length && *value_length != c.head_dim)
    return Unimplemented("GGUF attention.value_length " + std::to_string(*value_length) +
                         " differs from the key length " + std::to_string(c.head_dim));
  if (rope_dims && *rope_dims != c.head_dim)
    return Unimplemented("GGUF rope.dimension_count " + std::to_string(*rope_dims) +
                         " differs from the head size " + std::to_string(c.head_dim) +
                         " (partial rotary embeddings are not supported)");
  LSERVE_RETURN_IF_ERROR(ReadRopeScaling(f, arch, c));

  // vocab_size: <arch>.vocab_size, else the number of tokens (as transformers).
  LSERVE_ASSIGN_OR_RETURN(auto vocab, OptInt(f, p + "vocab_size"));
  if (vocab) {
    c.vocab_size = *vocab;
  } else if (f.Find("tokenizer.ggml.tokens") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(auto tokens, f.GetStringArray("tokenizer.ggml.tokens"));
    c.vocab_size = static_cast<int64_t>(tokens.size());
  } else {
    return InvalidArgument("GGUF file gives neither " + p + "vocab_size nor tokenizer.ggml.tokens");
  }

  LSERVE_ASSIGN_OR_RETURN(c.bos_token_id, OptInt(f, "tokenizer.ggml.bos_token_id"));
  LSERVE_ASSIGN_OR_RETURN(auto eos, OptInt(f, "tokenizer.ggml.eos_token_id"));
  if (eos) c.eos_token_ids = {*eos};
  LSERVE_ASSIGN_OR_RETURN(c.pad_token_id, OptInt(f, "tokenizer.ggml.padding_token_id"));
  LSERVE_RETURN_IF_ERROR(ReadGenerationDefaults(f, c.generation));

  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  if (c.architecture == Architecture::kLlama) c.attention_bias = f.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.mlp_bias = f.FindTensor("blk.0.ffn_up.bias") != nullptr;
  return c;
}

// "blk.<n>.<rest>" -> n and rest; false for other names or a malformed n.
bool SplitBlockName(std::string_view name, int64_t* layer, std::string_view* rest) {
  if (name.substr(0, 4) != "blk.") return false;
  name.remove_prefix(4);
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 9) return false;
  const std::string_view digits = name.substr(0, dot);
  for (char ch : digits)
    if (ch < '0' || ch > '9') return false;
  if (digits.size() > 1 && digits[0] == '0') return false;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *layer);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

std::string HfTensorName(std::string_view gguf_name) {
  if (gguf_name == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf_name == "output_norm.weight") return "model.norm.weight";
  if (gguf_name == "output.weight") return "lm_head.weight";
  int64_t layer = 0;
  std::string_view rest;
  if (!SplitBlockName(gguf_name, &layer, &rest)) return "";
  const size_t dot = rest.rfind('.');
  if (dot == std::string_view::npos) return "";
  const std::string_view part = rest.substr(0, dot);
  const std::string_view suffix = rest.substr(dot);  // ".weight" / ".bias"
  if (suffix != ".weight" && suffix != ".bias") return "";
  static const std::pair<std::string_view, std::string_view> kParts[] = {
      {"attn_q", "self_attn.q_proj"},          {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},           {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},           {"attn_norm", "input_layernorm"},
      {"ffn_norm", "post_attention_layernorm"},
  };
  for (const auto& [g, hf] : kParts) {
    if (part != g) continue;
    if (suffix == ".bias" && (g == "attn_norm" || g == "ffn_norm")) return "";
    return "model.layers." + std::to_string(layer) + "." + std::string(hf) + std::string(suffix);
  }
  return "";
}

void UnpermuteGgufRows(const uint8_t* src, uint8_t* dst, int64_t n_rows, int64_t row_bytes, int64_t n_heads) {
  const int64_t head_rows = n_rows / n_heads;
  const int64_t half = head_rows / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t part = 0; part < 2; ++part) {
      for (int64_t i = 0; i < half; ++i) {
        const int64_t hf_row = h * head_rows + part * half + i;
        const int64_t gguf_row = h * head_rows + 2 * i + part;
        std::memcpy(dst + hf_row * row_bytes, src + gguf_row * row_bytes, static_cast<size_t>(row_bytes));
      }
    }
  }
}

namespace {

// Rewrites `t` (a llama Q or K weight or bias) into HF row order in a new
// buffer owned by `model`.
Status Unpermute(const GgufTensorInfo& g, int64_t n_heads, TensorInfo& t, GgufModel& model) {
  const DType dtype = t.dtype;
  int64_t n_rows = 0, row_bytes = 0;
  if (g.n_dims == 1) {
    if (DTypeIsQuantized(dtype))
      return Unimplemented("tensor '" + std::string(g.name) + "' is a quantized vector; its rows cannot be reordered");
    n_rows = g.ne[0];
    row_bytes = DTypeBlockBytes(dtype);
  } else {
    n_rows = g.ne[1] * g.ne[2] * g.ne[3];
    row_bytes = static_cast<int64_t>(*DTypeBytesFor(dtype, static_cast<uint64_t>(g.ne[0])));
  }
  if (n_heads <= 0 || n_rows % (2 * n_heads) != 0)
    return InvalidArgument("tensor '" + std::string(g.name) + "' has " + std::to_string(n_rows) +
                           " rows, not a multiple of 2 x " + std::to_string(n_heads) + " heads");
  auto buffer = std::make_shared<std::vector<uint8_t>>(g.data.size());
  UnpermuteGgufRows(g.data.data(), buffer->data(), n_rows, row_bytes, n_heads);
  t.data = std::span<const uint8_t>(buffer->data(), buffer->size());
  model.owned_buffers.push_back(std::move(buffer));
  return Status::Ok();
}

}  // namespace

Result<GgufModel> LoadGgufModel(std::shared_ptr<const GgufFile> file) {
  if (!file) return InvalidArgument("no GGUF file given");
  const std::string where = "GGUF '" + file->path() + "'";
  GgufModel model;
  model.file = file;
  {
    auto config = ReadConfig(*file);
    if (!config.ok()) return config.status().Annotate(where);
    model.config = std::move(config).value();
  }
  if (Status s = model.config.Validate(); !s.ok()) return s.Annotate(where);
  const ModelConfig& c = model.config;

  const auto expected = ExpectedTensorShapes(c);
  std::map<std::string, bool> seen;
  for (const GgufTensorInfo& g : file->tensors()) {
    const std::string gname(g.name);
    if (g.name == "rope_freqs.weight") {
      if (g.type->dtype != DType::kF32 || g.n_dims != 1 || g.ne[0] != c.head_dim / 2)
        return InvalidArgument(where + ": rope_freqs.weight must be F32 [" + std::to_string(c.head_dim / 2) +
                               "], found " + std::string(g.type->name) + " " + ShapeString(g.shape()));
      model.rope_freqs = TensorInfo{.name = gname, .dtype = DType::kF32, .shape = g.shape(), .data = g.data,
                                    .file = file->path()};
      continue;
    }
    const std::string hf = HfTensorName(g.name);
    if (hf.empty())
      return InvalidArgument(where + ": unexpected tensor '" + gname + "' for architecture " + c.model_type);
    auto it = expected.find(hf);
    if (it == expected.end())
      return InvalidArgument(where + ": unexpected tensor '" + gname + "' (" + hf + ") for this configuration");
    const std::vector<int64_t> shape = g.shape();
    if (shape != it->second)
      return InvalidArgument(where + ": tensor '" + gname + "' (" + hf + ") has shape " + ShapeString(shape) +
                             ", expected " + ShapeString(it->second));
    if (!g.type->dtype)
      return Unimplemented(where + ": tensor '" + gname + "' has ggml type " + std::string(g.type->name) +
                           ", which lserve cannot load (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)");
    seen[hf] = true;
    TensorInfo t{.name = hf, .dtype = *g.type->dtype, .shape = shape, .data = g.data, .file = file->path()};
    if (c.architecture == Architecture::kLlama) {
      int64_t layer = 0;
      std::string_view rest;
      if (SplitBlockName(g.name, &layer, &rest)) {
        if (rest.substr(0, 7) == "attn_q.") {
          if (Status s = Unpermute(g, c.num_attention_heads, t, model); !s.ok()) return s.Annotate(where);
        } else if (rest.substr(0, 7) == "attn_k.") {
          if (Status s = Unpermute(g, c.num_key_value_heads, t, model); !s.ok()) return s.Annotate(where);
        }
      }
    }
    model.tensors.push_back(std::move(t));
    model.stored_dtypes.emplace_back(g.type->name);
  }
  for (const auto& [name, shape] : expected) {
    if (!seen.count(name))
      return InvalidArgument(where + ": tensor " + name + " " + ShapeString(shape) + " is missing");
  }
  return model;
}

}  // namespace lserve
