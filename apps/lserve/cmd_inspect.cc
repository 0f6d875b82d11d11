// lserve inspect: what a model file holds, as JSON.
#include <map>

#include "commands.h"
#include "formats/model_source.h"

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

int RunInspect(const std::string& model_flag) {
  auto path = ResolveModelPath(model_flag);
  if (!path.ok()) return Fail(path.status());
  auto model = OpenModel(*path);
  if (!model.ok()) return Fail(model.status());
  const ModelSource& m = *model;

  nlohmann::json tensors = nlohmann::json::array();
  std::map<std::string, int64_t> dtype_counts;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorInfo& t = m.tensors[i];
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", m.stored_dtypes[i]}});
    ++dtype_counts[m.stored_dtypes[i]];
  }
  return PrintJson({
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
  });
}

}  // namespace

Command AddInspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "architecture, config, tensor shapes, dtypes, parameter count");
  auto model = std::make_shared<std::string>();
  AddModelOption(*cmd, model.get());
  return {cmd, [model] { return RunInspect(*model); }};
}

}  // namespace lserve::app
