// `lserve inspect` on the fixture models, the demo model and broken inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace lserve::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> FixtureModels() {
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(SourcePath("tests/fixtures/models")))
    if (e.is_directory()) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(CliInspect, FixtureModelsMatchTheirConfig) {
  const auto dirs = FixtureModels();
  ASSERT_GE(dirs.size(), 4u);
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir);
    const json config = json::parse(ReadFile(dir + "/config.json"));
    const CliResult r = RunLserve({"inspect", "--model", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["format"], "huggingface");
    EXPECT_EQ(j["architecture"], config["architectures"][0]);
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads"})
      EXPECT_EQ(j["config"][key], config[key]) << key;
    EXPECT_EQ(j["config"]["tie_word_embeddings"], config.value("tie_word_embeddings", false));
    // Parameter count = sum of the tensor sizes it lists.
    int64_t params = 0;
    for (const auto& t : j["tensors"]) {
      int64_t n = 1;
      for (int64_t d : t["shape"]) n *= d;
      params += n;
    }
    EXPECT_EQ(j["parameter_count"].get<int64_t>(), params);
    EXPECT_EQ(j["tensor_count"].get<size_t>(), j["tensors"].size());
    EXPECT_TRUE(j["has_chat_template"].get<bool>());
  }
}

TEST(CliInspect, MissingPathIsExit2) {
  const CliResult r = RunLserve({"inspect", "--model", "/nonexistent/model"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(CliInspect, GarbageGgufIsExit2) {
  const std::string path = TempPath("garbage.gguf");
  WriteFile(path, std::string("GGUF\x03\x00\x00\x00garbage", 15));
  const CliResult r = RunLserve({"inspect", "--model", path});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(r.err.empty());
}

TEST(CliInspect, FolderWithoutConfigIsExit2) {
  const std::string dir = TempPath("empty_model");
  fs::create_directories(dir);
  const CliResult r = RunLserve({"inspect", "--model", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
}

TEST(CliInspect, TruncatedSafetensorsIsExit2) {
  const std::string dir = TempPath("truncated_model");
  fs::create_directories(dir);
  const std::string src = FixtureModels().front();
  for (const auto& e : fs::directory_iterator(src)) fs::copy(e.path(), dir + "/" + e.path().filename().string());
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") {
      const std::string bytes = ReadFile(e.path().string());
      WriteFile(e.path().string(), bytes.substr(0, bytes.size() - 7));
    }
  }
  const CliResult r = RunLserve({"inspect", "--model", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(r.err.empty());
}

TEST(CliInspect, UnknownFlagIsExit2) {
  const CliResult r = RunLserve({"inspect", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace lserve::e2e

namespace lserve::e2e {
namespace {

TEST(CliInspect, DemoModelMatchesTransformersGgufLoader) {
  ASSERT_TRUE(fs::exists(DemoModelPath())) << "run tools/fetch_demo_model.sh";
  const json golden = json::parse(ReadFile(SourcePath("tests/fixtures/demo/inspect.json")));
  const CliResult r = RunLserve({"inspect"});  // the demo model is the default
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["format"], "gguf");
  const json& gc = golden["config"];
  EXPECT_EQ(j["architecture"], gc["architecture"]);
  EXPECT_EQ(j["model_type"], gc["model_type"]);
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "head_dim", "rope_theta", "rms_norm_eps", "max_position_embeddings",
                          "tie_word_embeddings", "bos_token_id", "pad_token_id"})
    EXPECT_EQ(j["config"][key], gc[key]) << key;
  EXPECT_EQ(j["config"]["eos_token_id"], json::array({gc["eos_token_id"]}));
  EXPECT_TRUE(j["config"]["rope_scaling"].is_null());
  EXPECT_EQ(gc["rope_type"], "default");

  EXPECT_EQ(j["parameter_count"], golden["num_parameters"]);
  EXPECT_EQ(j["tensor_count"], golden["gguf_tensor_count"]);
  EXPECT_EQ(j["dtypes"], golden["gguf_type_counts"]);
  // Every tensor under its HF name with transformers' shape; only the tied
  // lm_head (which the file does not store) is missing.
  json hf = golden["hf_tensors"];
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    ASSERT_TRUE(hf.contains(name)) << name;
    EXPECT_EQ(t["shape"], hf[name]) << name;
    hf.erase(name);
  }
  EXPECT_EQ(hf.size(), 1u);
  EXPECT_TRUE(hf.contains("lm_head.weight"));
}

}  // namespace
}  // namespace lserve::e2e
