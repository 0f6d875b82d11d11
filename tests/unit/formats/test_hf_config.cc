// config.json / generation_config.json -> ModelConfig, against what
// transformers 5.24 makes of the same texts, and every RELIABILITY.md A6 case.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/hf_config.h"
#include "formats/model_config.h"

namespace lserve {
namespace {

using json = nlohmann::json;

// Texts written by transformers 5.24 itself: `XConfig(...).to_json_string()`
// (what save_pretrained writes), compacted; the expected values are what
// `XConfig.from_dict(json.loads(text))` reports.
struct TransformersCase {
  const char* name;
  const char* text;
  Architecture arch;
  int64_t vocab, hidden, layers, heads, kv_heads, head_dim, max_pos;
  RopeScalingType rope;
  double rope_theta, factor;
  int64_t original_max;
  bool tie, attention_bias, mlp_bias;
  std::optional<int64_t> bos;
  std::vector<int64_t> eos;
  std::optional<int64_t> pad;
  std::optional<int64_t> sliding_window;
  const char* dtype;
};

const TransformersCase kTransformersCases[] = {
    {"Llama3RopeParameters",
     R"({"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":128000,"dtype":"bfloat16","eos_token_id":[128001,128008,128009],"head_dim":64,"hidden_act":"silu","hidden_size":2048,"initializer_range":0.02,"intermediate_size":8192,"max_position_embeddings":131072,"mlp_bias":false,"model_type":"llama","num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"pad_token_id":null,"pretraining_tp":1,"rms_norm_eps":1e-05,"rope_parameters":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_theta":500000.0,"rope_type":"llama3"},"tie_word_embeddings":true,"transformers_version":"5.24.0","use_cache":true,"vocab_size":128256})",
     Architecture::kLlama, 128256, 2048, 16, 32, 8, 64, 131072, RopeScalingType::kLlama3, 500000.0, 32.0, 8192,
     true, false, false, 128000, {128001, 128008, 128009}, std::nullopt, std::nullopt, "bfloat16"},
    {"Llama2Linear",
     R"({"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":1,"dtype":"float16","eos_token_id":2,"head_dim":64,"hidden_act":"silu","hidden_size":512,"initializer_range":0.02,"intermediate_size":1376,"max_position_embeddings":4096,"mlp_bias":false,"model_type":"llama","num_attention_heads":8,"num_hidden_layers":4,"num_key_value_heads":8,"pad_token_id":0,"pretraining_tp":1,"rms_norm_eps":1e-06,"rope_parameters":{"factor":2.0,"rope_theta":10000.0,"rope_type":"linear","type":"linear"},"tie_word_embeddings":false,"transformers_version":"5.24.0","use_cache":true,"vocab_size":32000})",
     Architecture::kLlama, 32000, 512, 4, 8, 8, 64, 4096, RopeScalingType::kLinear, 10000.0, 2.0, 0, false, false,
     false, 1, {2}, 0, std::nullopt, "float16"},
    {"LlamaDynamicBias",
     R"({"attention_bias":true,"attention_dropout":0.0,"bos_token_id":null,"eos_token_id":null,"head_dim":64,"hidden_act":"silu","hidden_size":256,"initializer_range":0.02,"intermediate_size":512,"max_position_embeddings":2048,"mlp_bias":true,"model_type":"llama","num_attention_heads":4,"num_hidden_layers":2,"num_key_value_heads":1,"pad_token_id":null,"pretraining_tp":1,"rms_norm_eps":1e-06,"rope_parameters":{"factor":4.0,"rope_theta":20000.0,"rope_type":"dynamic"},"tie_word_embeddings":false,"transformers_version":"5.24.0","use_cache":true,"vocab_size":1000})",
     Architecture::kLlama, 1000, 256, 2, 4, 1, 64, 2048, RopeScalingType::kDynamic, 20000.0, 4.0, 0, false, true,
     true, std::nullopt, {}, std::nullopt, std::nullopt, ""},
    {"MistralYarn",
     R"({"architectures":["MistralForCausalLM"],"attention_dropout":0.0,"bos_token_id":1,"dtype":"bfloat16","eos_token_id":2,"head_dim":128,"hidden_act":"silu","hidden_size":5120,"initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":131072,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":40,"num_key_value_heads":8,"pad_token_id":null,"rms_norm_eps":1e-06,"rope_parameters":{"beta_fast":32.0,"beta_slow":1.0,"factor":4.0,"original_max_position_embeddings":32768,"rope_theta":1000000.0,"rope_type":"yarn"},"sliding_window":null,"tie_word_embeddings":false,"transformers_version":"5.24.0","use_cache":true,"vocab_size":32768})",
     Architecture::kMistral, 32768, 5120, 40, 32, 8, 128, 131072, RopeScalingType::kYarn, 1e6, 4.0, 32768, false,
     false, false, 1, {2}, std::nullopt, std::nullopt, "bfloat16"},
    {"MistralDefault",
     R"({"attention_dropout":0.0,"bos_token_id":1,"eos_token_id":2,"head_dim":128,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":131072,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"pad_token_id":null,"rms_norm_eps":1e-06,"rope_parameters":{"rope_theta":10000.0,"rope_type":"default"},"sliding_window":4096,"tie_word_embeddings":false,"transformers_version":"5.24.0","use_cache":true,"vocab_size":32000})",
     Architecture::kMistral, 32000, 4096, 32, 32, 8, 128, 131072, RopeScalingType::kNone, 10000.0, 1.0, 0, false,
     false, false, 1, {2}, std::nullopt, 4096, ""},
    {"Qwen2Tied",
     R"({"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,"dtype":"bfloat16","eos_token_id":151645,"hidden_act":"silu","hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,"layer_types":["full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention","full_attention"],"max_position_embeddings":32768,"max_window_layers":21,"model_type":"qwen2","num_attention_heads":14,"num_hidden_layers":24,"num_key_value_heads":2,"pad_token_id":null,"rms_norm_eps":1e-06,"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"},"sliding_window":null,"tie_word_embeddings":true,"transformers_version":"5.24.0","use_cache":true,"use_sliding_window":false,"vocab_size":151936})",
     Architecture::kQwen2, 151936, 896, 24, 14, 2, 64, 32768, RopeScalingType::kNone, 1e6, 1.0, 0, true, true,
     false, 151643, {151645}, std::nullopt, std::nullopt, "bfloat16"},
    {"Qwen2Default",
     R"({"attention_dropout":0.0,"bos_token_id":null,"eos_token_id":null,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":22016,"layer_types":["full_attention","full_attention"],"max_position_embeddings":32768,"max_window_layers":28,"model_type":"qwen2","num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":32,"pad_token_id":null,"rms_norm_eps":1e-06,"rope_parameters":{"rope_theta":10000.0,"rope_type":"default"},"sliding_window":null,"tie_word_embeddings":false,"transformers_version":"5.24.0","use_cache":true,"use_sliding_window":false,"vocab_size":151936})",
     Architecture::kQwen2, 151936, 4096, 32, 32, 32, 128, 32768, RopeScalingType::kNone, 10000.0, 1.0, 0, false,
     true, false, std::nullopt, {}, std::nullopt, std::nullopt, ""},
    // The transformers 4 convention as Llama-3.1 checkpoints ship it:
    // rope_scaling (with rope_type) beside a top-level rope_theta.
    {"Llama31RopeScaling",
     R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256
})",
     Architecture::kLlama, 128256, 4096, 32, 32, 8, 128, 131072, RopeScalingType::kLlama3, 500000.0, 8.0, 8192,
     false, false, false, 128000, {128001, 128008, 128009}, std::nullopt, std::nullopt, "bfloat16"},
    // Qwen2.5 with the long-context rope_scaling its model cards suggest
    // (legacy "type" key), and use_sliding_window false.
    {"Qwen25YarnLegacyType",
     R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
 "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944,
 "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 28,
 "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
 "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
 "sliding_window": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.43.1",
 "use_cache": true, "use_sliding_window": false, "vocab_size": 152064})",
     Architecture::kQwen2, 152064, 3584, 28, 28, 4, 128, 32768, RopeScalingType::kYarn, 1e6, 4.0, 32768, false,
     true, false, 151643, {151645}, std::nullopt, std::nullopt, "bfloat16"},
};

TEST(HfConfig, MatchesTransformersOnSavedConfigs) {
  for (const TransformersCase& c : kTransformersCases) {
    SCOPED_TRACE(c.name);
    Result<ModelConfig> r = ParseHfConfig(c.text, "");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const ModelConfig& m = *r;
    EXPECT_EQ(m.architecture, c.arch);
    EXPECT_EQ(m.vocab_size, c.vocab);
    EXPECT_EQ(m.hidden_size, c.hidden);
    EXPECT_EQ(m.num_hidden_layers, c.layers);
    EXPECT_EQ(m.num_attention_heads, c.heads);
    EXPECT_EQ(m.num_key_value_heads, c.kv_heads);
    EXPECT_EQ(m.head_dim, c.head_dim);
    EXPECT_EQ(m.max_position_embeddings, c.max_pos);
    EXPECT_EQ(m.rope_scaling.type, c.rope);
    EXPECT_DOUBLE_EQ(m.rope_theta, c.rope_theta);
    EXPECT_DOUBLE_EQ(m.rope_scaling.factor, c.factor);
    EXPECT_EQ(m.rope_scaling.original_max_position_embeddings, c.original_max);
    EXPECT_EQ(m.tie_word_embeddings, c.tie);
    EXPECT_EQ(m.attention_bias, c.attention_bias);
    EXPECT_EQ(m.mlp_bias, c.mlp_bias);
    EXPECT_EQ(m.bos_token_id, c.bos);
    EXPECT_EQ(m.eos_token_ids, c.eos);
    EXPECT_EQ(m.pad_token_id, c.pad);
    EXPECT_EQ(m.sliding_window, c.sliding_window);
    EXPECT_EQ(m.torch_dtype, c.dtype);
    EXPECT_EQ(m.hidden_act, "silu");
  }
}

TEST(HfConfig, Llama3FieldsAndRmsEps) {
  ModelConfig m = *ParseHfConfig(kTransformersCases[7].text, "");
  EXPECT_DOUBLE_EQ(m.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.high_freq_factor, 4.0);
  EXPECT_DOUBLE_EQ(m.rms_norm_eps, 1e-5);
  EXPECT_EQ(m.gqa_group(), 4);
  EXPECT_EQ(m.model_type, "llama");
}

// A small valid config to mutate.
json BaseConfig(const char* model_type = "llama") {
  return json{{"model_type", model_type}, {"vocab_size", 256},       {"hidden_size", 64},
              {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"max_position_embeddings", 512}, {"bos_token_id", 1},
              {"eos_token_id", 2}};
}

Result<ModelConfig> Parse(const json& j, const std::string& generation = "") { return ParseHfConfig(j.dump(), generation); }

// Expects a failure whose message contains every one of `needles`.
void ExpectError(const Result<ModelConfig>& r, std::initializer_list<std::string> needles) {
  ASSERT_FALSE(r.ok()) << "accepted, expected an error mentioning " << *needles.begin();
  for (const std::string& n : needles)
    EXPECT_NE(r.status().message().find(n), std::string::npos) << r.status().message() << "\n  lacks: " << n;
}

TEST(HfConfig, TransformersPrecedenceOfRopeConventions) {
  // rope_scaling (non-empty) beats rope_parameters; "rope_type" beats "type";
  // the object's rope_theta beats the top-level one.
  json j = BaseConfig();
  j["rope_theta"] = 1234.0;
  j["rope_scaling"] = {{"type", "dynamic"}, {"rope_type", "linear"}, {"factor", 3.0}, {"rope_theta", 777.0}};
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 9.0}};
  ModelConfig m = *Parse(j);
  EXPECT_EQ(m.rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 3.0);
  EXPECT_DOUBLE_EQ(m.rope_theta, 777.0);

  // An empty rope_scaling falls through to rope_parameters; the top-level
  // rope_theta fills in what the object lacks.
  j["rope_scaling"] = json::object();
  m = *Parse(j);
  EXPECT_EQ(m.rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_DOUBLE_EQ(m.rope_theta, 1234.0);
  EXPECT_EQ(m.rope_scaling.original_max_position_embeddings, 512);  // defaults to max_position_embeddings

  j["rope_scaling"] = {{"type", "default"}};
  m = *Parse(j);
  EXPECT_EQ(m.rope_scaling.type, RopeScalingType::kNone);

  j.erase("rope_scaling");
  j.erase("rope_parameters");
  j.erase("rope_theta");
  m = *Parse(j);
  EXPECT_EQ(m.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_DOUBLE_EQ(m.rope_theta, 10000.0);
}

TEST(HfConfig, YarnDetailsAsTransformersComputesThem) {
  // Verified with transformers 5.24: the top-level original_max overrides the
  // object's, a null factor becomes max_position / original, a zero beta
  // means the default.
  json j = BaseConfig("mistral");
  j["max_position_embeddings"] = 65536;
  j["original_max_position_embeddings"] = 16384;
  j["rope_parameters"] = {{"rope_type", "yarn"},   {"factor", nullptr}, {"original_max_position_embeddings", 4096},
                          {"beta_fast", 0},        {"mscale", 0.707},   {"mscale_all_dim", 0.707},
                          {"truncate", false},     {"attention_factor", 1.25}};
  ModelConfig m = *Parse(j);
  EXPECT_EQ(m.rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(m.rope_scaling.original_max_position_embeddings, 16384);
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 4.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.mscale, 0.707);
  EXPECT_DOUBLE_EQ(m.rope_scaling.mscale_all_dim, 0.707);
  EXPECT_FALSE(m.rope_scaling.truncate);
  EXPECT_EQ(m.rope_scaling.attention_factor, 1.25);
}

TEST(HfConfig, PerArchitectureDefaultsForAbsentKeys) {
  // Only model_type: the configuration classes' defaults apply.
  ModelConfig llama = *ParseHfConfig(R"({"model_type": "llama"})", "");
  EXPECT_EQ(llama.vocab_size, 32000);
  EXPECT_EQ(llama.intermediate_size, 11008);
  EXPECT_EQ(llama.num_key_value_heads, 32);
  EXPECT_EQ(llama.max_position_embeddings, 2048);
  EXPECT_EQ(llama.bos_token_id, 1);
  EXPECT_EQ(llama.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(llama.sliding_window.has_value());
  EXPECT_FALSE(llama.tie_word_embeddings);

  ModelConfig mistral = *ParseHfConfig(R"({"architectures": ["MistralForCausalLM"]})", "");
  EXPECT_EQ(mistral.architecture, Architecture::kMistral);
  EXPECT_EQ(mistral.num_key_value_heads, 8);
  EXPECT_EQ(mistral.intermediate_size, 14336);
  EXPECT_EQ(mistral.max_position_embeddings, 131072);
  EXPECT_EQ(mistral.sliding_window, 4096);

  ModelConfig qwen = *ParseHfConfig(R"({"model_type": "qwen2", "use_sliding_window": true})", "");
  EXPECT_EQ(qwen.vocab_size, 151936);
  EXPECT_EQ(qwen.num_key_value_heads, 32);
  EXPECT_FALSE(qwen.bos_token_id.has_value());
  EXPECT_TRUE(qwen.eos_token_ids.empty());
  EXPECT_TRUE(qwen.attention_bias);
  EXPECT_EQ(qwen.sliding_window, 4096);
}

TEST(HfConfig, NullsAndExplicitHeadDim) {
  json j = BaseConfig();
  j["num_key_value_heads"] = nullptr;  // LlamaConfig: one KV head per head
  j["head_dim"] = nullptr;              // derived
  ModelConfig m = *Parse(j);
  EXPECT_EQ(m.num_key_value_heads, 4);
  EXPECT_EQ(m.head_dim, 16);

  json mistral = BaseConfig("mistral");
  mistral["num_key_value_heads"] = nullptr;  // MistralConfig types it int
  ExpectError(Parse(mistral), {"num_key_value_heads", "integer"});

  // head_dim need not be hidden / heads (Mistral-Nemo: 5120 / 32 != 128)...
  mistral = BaseConfig("mistral");
  mistral["hidden_size"] = 96;
  mistral["head_dim"] = 32;
  m = *Parse(mistral);
  EXPECT_EQ(m.head_dim, 32);
  // ...but LlamaConfig.validate_architecture still wants hidden % heads == 0.
  json llama = BaseConfig();
  llama["hidden_size"] = 90;
  llama["num_attention_heads"] = 4;
  llama["head_dim"] = 16;
  ExpectError(Parse(llama), {"hidden_size", "num_attention_heads"});
}

TEST(HfConfig, BiasesFollowTheArchitecture) {
  json j = BaseConfig("mistral");
  j["attention_bias"] = true;  // not a MistralConfig field: ignored
  EXPECT_FALSE(Parse(j)->attention_bias);
  j = BaseConfig("qwen2");
  j["attention_bias"] = false;  // Qwen2 always has q/k/v biases
  EXPECT_TRUE(Parse(j)->attention_bias);
}

TEST(HfConfig, DtypeWinsOverTorchDtypeAndUnknownKeysAreIgnored) {
  json j = BaseConfig();
  j["torch_dtype"] = "bfloat16";
  j["dtype"] = "float16";
  j["auto_map"] = {{"AutoModelForCausalLM", "modeling_evil.EvilForCausalLM"}};
  j["some_future_key"] = {{"nested", {1, 2, 3}}};
  ModelConfig m = *Parse(j);
  EXPECT_EQ(m.torch_dtype, "float16");
  j["dtype"] = nullptr;
  EXPECT_EQ(Parse(j)->torch_dtype, "bfloat16");
  j["dtype"] = "float8_e4m3fn";
  ExpectError(Parse(j), {"dtype", "float8_e4m3fn"});
}

// ---- RELIABILITY.md A6: invalid values, each rejected naming the key -------

TEST(HfConfigInvalid, SizesZeroNegativeOrAbsurd) {
  const std::pair<const char*, std::vector<json>> cases[] = {
      {"vocab_size", {0, -1, int64_t{1} << 40}},
      {"hidden_size", {0, -64, int64_t{1} << 40}},
      {"intermediate_size", {0, -5, int64_t{1} << 40}},
      {"num_hidden_layers", {0, -1, int64_t{1} << 40}},
      {"num_attention_heads", {0, -4}},
      {"num_key_value_heads", {0, -2, 8}},
      {"max_position_embeddings", {0, -1, int64_t{1} << 40}},
      {"head_dim", {0, -16, 7, int64_t{1} << 40}},
      {"sliding_window", {0, -1}},
  };
  for (const auto& [key, values] : cases) {
    for (const json& v : values) {
      SCOPED_TRACE(std::string(key) + " = " + v.dump());
      json j = BaseConfig(std::string(key) == "sliding_window" ? "mistral" : "llama");
      j[key] = v;
      ExpectError(Parse(j), {key});
    }
  }
}

TEST(HfConfigInvalid, HeadsThatDoNotDivide) {
  json j = BaseConfig();
  j["hidden_size"] = 100;
  j["num_attention_heads"] = 3;
  j["num_key_value_heads"] = 3;
  ExpectError(Parse(j), {"hidden_size", "not a multiple", "num_attention_heads"});
  j = BaseConfig();
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 3;
  ExpectError(Parse(j), {"num_key_value_heads", "not a multiple"});
}

// BaseConfig() with `member` ("\"key\": value") written first, as raw text.
std::string WithRawMember(const std::string& member) {
  const std::string base = BaseConfig().dump();
  std::string text = "{";
  text += member;
  text += ", ";
  text += base.substr(1);
  return text;
}

TEST(HfConfigInvalid, NonFiniteNumbers) {
  // NaN / Infinity are not JSON (Python's json would accept them).
  for (const char* literal : {"NaN", "Infinity", "-Infinity", "nan"}) {
    Result<ModelConfig> r = ParseHfConfig(WithRawMember(std::string("\"rms_norm_eps\": ") + literal), "");
    ExpectError(r, {"config.json", "invalid JSON", "rms_norm_eps"});
  }
  // 1e400 is grammatical JSON, but overflows a double (Python reads inf).
  for (const char* key : {"rms_norm_eps", "rope_theta"}) {
    std::string member = "\"";
    member += key;
    member += "\": 1e400";
    ExpectError(ParseHfConfig(WithRawMember(member), ""), {key, "overflow"});
  }
  ExpectError(ParseHfConfig(WithRawMember(R"("rope_scaling": {"rope_type": "linear", "factor": -1e400})"), ""),
              {"factor", "overflow"});
}

TEST(HfConfigInvalid, WrongJsonTypes) {
  const std::pair<const char*, json> cases[] = {
      {"hidden_size", "4096"},       {"hidden_size", 4096.0},      {"hidden_size", true},
      {"hidden_size", nullptr},      {"vocab_size", json::array()}, {"rms_norm_eps", "1e-6"},
      {"rope_theta", "abc"},         {"rope_theta", nullptr},       {"tie_word_embeddings", 1},
      {"tie_word_embeddings", "true"}, {"attention_bias", 0},       {"bos_token_id", "1"},
      {"bos_token_id", 1.0},         {"eos_token_id", {1, "2"}},    {"eos_token_id", true},
      {"pad_token_id", json::object()}, {"hidden_act", 7},          {"model_type", 3},
      {"architectures", "LlamaForCausalLM"}, {"rope_scaling", "linear"}, {"rope_parameters", json::array()},
      {"torch_dtype", 16},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(std::string(key) + " = " + value.dump());
    json j = BaseConfig();
    j[key] = value;
    ExpectError(Parse(j), {key});
  }
}

TEST(HfConfigInvalid, BogusRopeScaling) {
  const std::pair<json, const char*> cases[] = {
      {{{"rope_type", "quantum"}, {"factor", 2.0}}, "quantum"},
      {{{"type", "quantum"}, {"factor", 2.0}}, "quantum"},
      {{{"rope_type", "linear"}}, "factor"},
      {{{"rope_type", "dynamic"}}, "factor"},
      {{{"rope_type", "yarn"}}, "factor"},
      {{{"rope_type", "linear"}, {"factor", 0}}, "factor"},
      {{{"rope_type", "linear"}, {"factor", -2.0}}, "factor"},
      {{{"rope_type", "linear"}, {"factor", nullptr}}, "factor"},
      {{{"rope_type", "linear"}, {"factor", "2"}}, "factor"},
      {{{"rope_type", "llama3"}, {"factor", 8.0}}, "low_freq_factor"},
      {{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}}, "high_freq_factor"},
      {{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 1.0}},
       "high_freq_factor"},
      {{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 0.0}, {"high_freq_factor", 4.0}},
       "low_freq_factor"},
      {{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", -8192}},
       "original_max_position_embeddings"},
      {{{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", -1.0}}, "attention_factor"},
      {{{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", "fast"}}, "beta_fast"},
      {{{"rope_type", "yarn"}, {"factor", 4.0}, {"truncate", 1}}, "truncate"},
      {{{"rope_type", "longrope"}, {"factor", 4.0}}, "longrope"},
      {{{"rope_type", 3}}, "rope_type"},
      {{{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", -1.0}}, "rope_theta"},
      {{{"rope_type", "linear"}, {"factor", 2.0}, {"partial_rotary_factor", 0.5}}, "partial_rotary_factor"},
      {{{"full_attention", {{"rope_type", "default"}}}}, "per-layer"},
  };
  for (const auto& [rope, needle] : cases) {
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
      SCOPED_TRACE(std::string(key) + " = " + rope.dump());
      json j = BaseConfig();
      j[key] = rope;
      ExpectError(Parse(j), {needle});
    }
  }
  json j = BaseConfig();
  j["rope_theta"] = 0;
  ExpectError(Parse(j), {"rope_theta"});
}

TEST(HfConfigInvalid, TokenIdsOutsideTheVocabulary) {
  const std::pair<const char*, json> cases[] = {
      {"bos_token_id", 256}, {"bos_token_id", -1},           {"eos_token_id", 1000},
      {"eos_token_id", {2, 256}}, {"pad_token_id", -1},      {"pad_token_id", int64_t{1} << 40},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(std::string(key) + " = " + value.dump());
    json j = BaseConfig();
    j[key] = value;
    ExpectError(Parse(j), {key, "vocabulary"});
  }
  ExpectError(Parse(BaseConfig(), R"({"eos_token_id": [2, 999]})"), {"generation", "eos_token_id", "vocabulary"});
  ExpectError(Parse(BaseConfig(), R"({"pad_token_id": 256})"), {"generation", "pad_token_id"});
}

TEST(HfConfigInvalid, UnsupportedModelsAndActivations) {
  ExpectError(ParseHfConfig(R"({"model_type": "gemma"})", ""), {"model_type", "gemma"});
  ExpectError(ParseHfConfig(R"({"architectures": ["GPT2LMHeadModel"]})", ""), {"GPT2LMHeadModel"});
  ExpectError(ParseHfConfig(R"({"hidden_size": 64})", ""), {"model_type"});
  json j = BaseConfig();
  j["hidden_act"] = "gelu";
  ExpectError(Parse(j), {"hidden_act", "gelu"});
  j["hidden_act"] = "swish";  // the same function as silu in transformers' ACT2FN
  EXPECT_EQ(Parse(j)->hidden_act, "silu");
  j = BaseConfig();
  j["quantization_config"] = {{"quant_method", "gptq"}};
  ExpectError(Parse(j), {"quantization_config"});
  j = BaseConfig();
  j["rms_norm_eps"] = 0.0;
  ExpectError(Parse(j), {"rms_norm_eps"});
}

TEST(HfConfigInvalid, MalformedDocuments) {
  ExpectError(ParseHfConfig("", ""), {"config.json", "invalid JSON"});
  ExpectError(ParseHfConfig("[1, 2]", ""), {"top level"});
  ExpectError(ParseHfConfig(R"({"model_type": "llama"} trailing)", ""), {"invalid JSON"});
  ExpectError(ParseHfConfig(R"({"model_type": "llama", /* comment */ "vocab_size": 10})", ""), {"invalid JSON"});
  ExpectError(ParseHfConfig(R"({"model_type": "llama", "hidden_size": 64, "hidden_size": 4096})", ""),
              {"duplicate key", "hidden_size"});
  ExpectError(ParseHfConfig("{\"model_type\": \"llama\", \"name\": \"\xff\xfe\"}", ""), {"UTF-8"});
  // What follows a NUL byte must not be silently ignored.
  ExpectError(ParseHfConfig(std::string(R"({"model_type": "llama"})") + '\0' + "garbage", ""), {"NUL"});
  // Nesting far past any real config: refused without deep recursion.
  std::string deep = R"({"model_type": "llama", "x": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectError(ParseHfConfig(deep, ""), {"nesting"});
}

TEST(HfConfigInvalid, RandomTextCorruptionsNeverCrash) {
  // Byte edits of real config texts: every outcome is a value, and whatever
  // is accepted passes Validate().
  std::mt19937 rng(std::random_device{}());
  const char alphabet[] = "{}[],:\"0123456789-+.eE truefalsnl\\\x00\xff";
  for (const TransformersCase& c : kTransformersCases) {
    const std::string original = c.text;
    for (int iter = 0; iter < 300; ++iter) {
      std::string text = original;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !text.empty(); ++e) {
        const size_t at = rng() % text.size();
        switch (rng() % 3) {
          case 0: text[at] = alphabet[rng() % (sizeof(alphabet) - 1)]; break;
          case 1: text.erase(at, 1 + rng() % 8); break;
          case 2: text.insert(at, 1, alphabet[rng() % (sizeof(alphabet) - 1)]); break;
        }
      }
      Result<ModelConfig> r = ParseHfConfig(text, "");
      if (r.ok()) {
        ASSERT_TRUE(r->Validate().ok());
      }
    }
  }
}

// ---- generation_config.json ----------------------------------------------

TEST(GenerationConfig, ReadsTheDefaults) {
  GenerationDefaults g = *ParseGenerationConfig(R"({
    "_from_model_config": true, "bos_token_id": 128000, "do_sample": true,
    "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9, "top_k": 50,
    "min_p": 0.05, "repetition_penalty": 1.1, "max_new_tokens": 256, "pad_token_id": null,
    "transformers_version": "4.42.3"})");
  EXPECT_EQ(g.temperature, 0.6);
  EXPECT_EQ(g.top_p, 0.9);
  EXPECT_EQ(g.top_k, 50);
  EXPECT_EQ(g.min_p, 0.05);
  EXPECT_EQ(g.repetition_penalty, 1.1);
  EXPECT_EQ(g.max_new_tokens, 256);
  EXPECT_EQ(g.do_sample, true);
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(g.bos_token_id, 128000);
  EXPECT_FALSE(g.pad_token_id.has_value());

  g = *ParseGenerationConfig(R"({"eos_token_id": 2, "temperature": 1})");
  EXPECT_EQ(g.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(g.temperature, 1.0);
  EXPECT_FALSE(g.top_k.has_value());

  ModelConfig m = *Parse(BaseConfig(), R"({"eos_token_id": [2, 3], "temperature": 0.7})");
  EXPECT_EQ(m.generation.eos_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m.eos_token_ids, std::vector<int64_t>{2});
}

TEST(GenerationConfig, RejectsInvalidValues) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"temperature": -0.1})", "temperature"},     {R"({"temperature": "1"})", "temperature"},
      {R"({"top_p": 1.01})", "top_p"},                 {R"({"top_p": -0.5})", "top_p"},
      {R"({"top_k": -2})", "top_k"},                   {R"({"top_k": 1.5})", "top_k"},
      {R"({"min_p": 1.1})", "min_p"},                  {R"({"repetition_penalty": 0})", "repetition_penalty"},
      {R"({"max_new_tokens": 0})", "max_new_tokens"},  {R"({"do_sample": "yes"})", "do_sample"},
      {R"({"eos_token_id": "2"})", "eos_token_id"},     {R"({"temperature": 1e400})", "temperature"},
      {R"({"top_p": 0.9, "top_p": 0.5})", "duplicate key"}, {R"([])", "top level"},
  };
  for (const auto& [text, needle] : cases) {
    SCOPED_TRACE(text);
    Result<GenerationDefaults> r = ParseGenerationConfig(text);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("generation_config.json"), std::string::npos) << r.status().message();
  }
}

// ---- ExpectedTensorShapes ----------------------------------------------------

// Parameter names and shapes of tiny models saved by transformers 5.24
// (XForCausalLM(config).save_pretrained, read back with safetensors).
std::map<std::string, std::vector<int64_t>> ParseShapeList(const std::string& s) {
  std::map<std::string, std::vector<int64_t>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(';', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    const size_t colon = item.find(':');
    std::vector<int64_t> shape;
    size_t p = colon + 1;
    while (p < item.size()) {
      size_t comma = item.find(',', p);
      if (comma == std::string::npos) comma = item.size();
      shape.push_back(std::stoll(item.substr(p, comma - p)));
      p = comma + 1;
    }
    out[item.substr(0, colon)] = shape;
    pos = end + 1;
  }
  return out;
}

TEST(ExpectedTensorShapes, MatchTransformersCheckpoints) {
  struct Case {
    const char* config;
    const char* tensors;
  };
  const Case cases[] = {
      {R"({"architectures": ["LlamaForCausalLM"],"attention_bias": true,"attention_dropout": 0.0,"bos_token_id": 1,"dtype": "float32","eos_token_id": 2,"head_dim": 8,"hidden_act": "silu","hidden_size": 32,"initializer_range": 0.02,"intermediate_size": 48,"max_position_embeddings": 2048,"mlp_bias": true,"model_type": "llama","num_attention_heads": 4,"num_hidden_layers": 2,"num_key_value_heads": 2,"pad_token_id": null,"pretraining_tp": 1,"rms_norm_eps": 1e-06,"rope_parameters": {"rope_theta": 10000.0,"rope_type": "default"},"tie_word_embeddings": false,"transformers_version": "5.24.0","use_cache": true,"vocab_size": 64})",
       "lm_head.weight:64,32;model.embed_tokens.weight:64,32;model.layers.0.input_layernorm.weight:32;model.layers.0.mlp.down_proj.bias:32;model.layers.0.mlp.down_proj.weight:32,48;model.layers.0.mlp.gate_proj.bias:48;model.layers.0.mlp.gate_proj.weight:48,32;model.layers.0.mlp.up_proj.bias:48;model.layers.0.mlp.up_proj.weight:48,32;model.layers.0.post_attention_layernorm.weight:32;model.layers.0.self_attn.k_proj.bias:16;model.layers.0.self_attn.k_proj.weight:16,32;model.layers.0.self_attn.o_proj.bias:32;model.layers.0.self_attn.o_proj.weight:32,32;model.layers.0.self_attn.q_proj.bias:32;model.layers.0.self_attn.q_proj.weight:32,32;model.layers.0.self_attn.v_proj.bias:16;model.layers.0.self_attn.v_proj.weight:16,32;model.layers.1.input_layernorm.weight:32;model.layers.1.mlp.down_proj.bias:32;model.layers.1.mlp.down_proj.weight:32,48;model.layers.1.mlp.gate_proj.bias:48;model.layers.1.mlp.gate_proj.weight:48,32;model.layers.1.mlp.up_proj.bias:48;model.layers.1.mlp.up_proj.weight:48,32;model.layers.1.post_attention_layernorm.weight:32;model.layers.1.self_attn.k_proj.bias:16;model.layers.1.self_attn.k_proj.weight:16,32;model.layers.1.self_attn.o_proj.bias:32;model.layers.1.self_attn.o_proj.weight:32,32;model.layers.1.self_attn.q_proj.bias:32;model.layers.1.self_attn.q_proj.weight:32,32;model.layers.1.self_attn.v_proj.bias:16;model.layers.1.self_attn.v_proj.weight:16,32;model.norm.weight:32"},
      {R"({"architectures": ["Qwen2ForCausalLM"],"attention_dropout": 0.0,"bos_token_id": null,"dtype": "float32","eos_token_id": null,"hidden_act": "silu","hidden_size": 32,"initializer_range": 0.02,"intermediate_size": 48,"layer_types": ["full_attention","full_attention"],"max_position_embeddings": 32768,"max_window_layers": 28,"model_type": "qwen2","num_attention_heads": 4,"num_hidden_layers": 2,"num_key_value_heads": 1,"pad_token_id": null,"rms_norm_eps": 1e-06,"rope_parameters": {"rope_theta": 10000.0,"rope_type": "default"},"sliding_window": null,"tie_word_embeddings": true,"transformers_version": "5.24.0","use_cache": true,"use_sliding_window": false,"vocab_size": 64})",
       "model.embed_tokens.weight:64,32;model.layers.0.input_layernorm.weight:32;model.layers.0.mlp.down_proj.weight:32,48;model.layers.0.mlp.gate_proj.weight:48,32;model.layers.0.mlp.up_proj.weight:48,32;model.layers.0.post_attention_layernorm.weight:32;model.layers.0.self_attn.k_proj.bias:8;model.layers.0.self_attn.k_proj.weight:8,32;model.layers.0.self_attn.o_proj.weight:32,32;model.layers.0.self_attn.q_proj.bias:32;model.layers.0.self_attn.q_proj.weight:32,32;model.layers.0.self_attn.v_proj.bias:8;model.layers.0.self_attn.v_proj.weight:8,32;model.layers.1.input_layernorm.weight:32;model.layers.1.mlp.down_proj.weight:32,48;model.layers.1.mlp.gate_proj.weight:48,32;model.layers.1.mlp.up_proj.weight:48,32;model.layers.1.post_attention_layernorm.weight:32;model.layers.1.self_attn.k_proj.bias:8;model.layers.1.self_attn.k_proj.weight:8,32;model.layers.1.self_attn.o_proj.weight:32,32;model.layers.1.self_attn.q_proj.bias:32;model.layers.1.self_attn.q_proj.weight:32,32;model.layers.1.self_attn.v_proj.bias:8;model.layers.1.self_attn.v_proj.weight:8,32;model.norm.weight:32"},
      {R"({"architectures": ["MistralForCausalLM"],"attention_dropout": 0.0,"bos_token_id": 1,"dtype": "float32","eos_token_id": 2,"head_dim": 16,"hidden_act": "silu","hidden_size": 32,"initializer_range": 0.02,"intermediate_size": 48,"max_position_embeddings": 131072,"model_type": "mistral","num_attention_heads": 4,"num_hidden_layers": 2,"num_key_value_heads": 1,"pad_token_id": null,"rms_norm_eps": 1e-06,"rope_parameters": {"rope_theta": 10000.0,"rope_type": "default"},"sliding_window": 4096,"tie_word_embeddings": false,"transformers_version": "5.24.0","use_cache": true,"vocab_size": 64})",
       "lm_head.weight:64,32;model.embed_tokens.weight:64,32;model.layers.0.input_layernorm.weight:32;model.layers.0.mlp.down_proj.weight:32,48;model.layers.0.mlp.gate_proj.weight:48,32;model.layers.0.mlp.up_proj.weight:48,32;model.layers.0.post_attention_layernorm.weight:32;model.layers.0.self_attn.k_proj.weight:16,32;model.layers.0.self_attn.o_proj.weight:32,64;model.layers.0.self_attn.q_proj.weight:64,32;model.layers.0.self_attn.v_proj.weight:16,32;model.layers.1.input_layernorm.weight:32;model.layers.1.mlp.down_proj.weight:32,48;model.layers.1.mlp.gate_proj.weight:48,32;model.layers.1.mlp.up_proj.weight:48,32;model.layers.1.post_attention_layernorm.weight:32;model.layers.1.self_attn.k_proj.weight:16,32;model.layers.1.self_attn.o_proj.weight:32,64;model.layers.1.self_attn.q_proj.weight:64,32;model.layers.1.self_attn.v_proj.weight:16,32;model.norm.weight:32"},
  };
  for (const Case& c : cases) {
    Result<ModelConfig> m = ParseHfConfig(c.config, "");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    SCOPED_TRACE(ArchitectureName(m->architecture));
    EXPECT_EQ(ExpectedTensorShapes(*m), ParseShapeList(c.tensors));
  }
}

TEST(ModelConfigValidate, RandomMutationsNeverCrashAndBoundsHold) {
  // Random integer fields: either rejected, or every derived size is within
  // the caps (so that shape products cannot overflow).
  std::mt19937_64 rng(std::random_device{}());
  const char* keys[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings"};
  std::uniform_int_distribution<int> pick(0, 7);
  std::uniform_int_distribution<int> bits(0, 62);
  for (int i = 0; i < 2000; ++i) {
    json j = BaseConfig();
    for (int k = 0; k < 3; ++k) {
      const int64_t v = static_cast<int64_t>(rng() >> (63 - bits(rng))) * ((rng() & 7) == 0 ? -1 : 1);
      j[keys[pick(rng)]] = v;
    }
    Result<ModelConfig> r = Parse(j);
    if (!r.ok()) continue;
    for (const auto& [name, shape] : ExpectedTensorShapes(*r)) {
      int64_t n = 1;
      for (int64_t d : shape) {
        ASSERT_GT(d, 0) << name;
        ASSERT_LE(d, int64_t{1} << 24) << name;
        n *= d;
      }
      ASSERT_LE(n, int64_t{1} << 44) << name;
    }
  }
}

}  // namespace
}  // namespace lserve
