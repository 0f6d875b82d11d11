// lserve inspect: what a model file holds, as JSON.
#include <map>
#include <optional>

#include "commands.h"
#include "engine_session.h"
#include "tokenizer/model_text.h"
#include "formats/model_source.h"
#include "sparsity/head_roles.h"

namespace lserve::app {
namespace {

template <typename T>
nlohmann::json OptionalJson(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json RopeScalingJson(const RopeScaling& r) {
  if (r.type == RopeScalingType::kNone) return nullptr;
  nlohmann::json j = {{"type", RopeScalingName(r.type)}, {"factor", r.factor}};
  if (r.original_max_position_embeddings > 0)
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  if (r.type == RopeScalingType::kLlama3) {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.type == RopeScalingType::kYarn) {
    j["beta_fast"] = r.beta_fast;
    j["beta_slow"] = r.beta_slow;
    if (r.attention_factor) j["attention_factor"] = *r.attention_factor;
  }
  return j;
}

nlohmann::json ConfigJson(const ModelConfig& c) {
  return {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", RopeScalingJson(c.rope_scaling)},
      {"attention_bias", c.attention_bias},
      {"mlp_bias", c.mlp_bias},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"max_position_embeddings", c.max_position_embeddings},
      {"sliding_window", OptionalJson(c.sliding_window)},
      {"bos_token_id", OptionalJson(c.bos_token_id)},
      {"eos_token_id", c.eos_token_ids},
      {"pad_token_id", OptionalJson(c.pad_token_id)},
  };
}

struct InspectFlags {
  std::string model;
  AttentionFlags attention;  // a pattern or ratio adds "roles"
};

int RunInspect(const InspectFlags& flags) {
  auto path = ResolveModelPath(flags.model);
  if (!path.ok()) return Fail(path.status());
  auto model = OpenModel(*path);
  if (!model.ok()) return Fail(model.status());
  const ModelSource& m = *model;
  std::optional<HeadRoles> roles;
  if (!flags.attention.attn_pattern.empty() || flags.attention.streaming_ratio) {
    // Calibration (a ratio without a pattern) runs the model: it needs the tokenizer and a backend.
    auto tokenizer = LoadTokenizer(m);
    if (!tokenizer.ok()) return Fail(tokenizer.status());
    CpuBackend backend(CpuBackendOptions{});
    auto r = RolesFromFlags(flags.attention, m, *tokenizer, backend);
    if (!r.ok()) return Fail(r.status());
    roles = std::move(*r);
  }

  nlohmann::json tensors = nlohmann::json::array();
  std::map<std::string, int64_t> dtype_counts;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorInfo& t = m.tensors[i];
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", m.stored_dtypes[i]}});
    ++dtype_counts[m.stored_dtypes[i]];
  }
  nlohmann::json out = {
      {"path", m.path},
      {"format", m.format == ModelFormat::kGguf ? "gguf" : "huggingface"},
      {"architecture", ArchitectureName(m.config.architecture)},
      {"model_type", m.config.model_type},
      {"config", ConfigJson(m.config)},
      {"tensor_count", m.tensors.size()},
      {"parameter_count", m.parameter_count()},
      {"dtypes", dtype_counts},
      {"has_chat_template", !m.chat_template.empty()},
      {"tensors", tensors},
  };
  if (roles) out["roles"] = roles->roles;
  return PrintJson(out);
}

}  // namespace

Command AddInspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "architecture, config, tensor shapes, dtypes, parameter count");
  auto flags = std::make_shared<InspectFlags>();
  AddModelOption(*cmd, &flags->model);
  // All attention flags are accepted; --attn-pattern / --streaming-ratio add
  // "roles" (per layer, per KV head: 1 retrieval, 0 streaming).
  AddAttentionOptions(*cmd, &flags->attention);
  return {cmd, [flags] { return RunInspect(*flags); }};
}

}  // namespace lserve::app
