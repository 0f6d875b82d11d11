// tokenize / detokenize / render-chat through the binary, against the goldens
// that tools/fixtures made with Hugging Face transformers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace lserve::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

std::vector<json> ReadJsonl(const std::string& path, size_t max_lines) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string line;
  while (out.size() < max_lines && std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string JoinIds(const json& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ",") + std::to_string(id.get<int64_t>());
  return s;
}

// Which tokenizer kind each fixture model carries (its tokenizer.json is a copy).
const std::map<std::string, std::string> kModelKinds = {
    {"llama3_gqa", "llama3"},
    {"qwen2_tied", "qwen2"},
    {"mistral_mqa", "mistral_spm"},
    {"llama2_mha_sharded", "llama2_spm"},
    {"llama_yarn", "gpt2"},
};

TEST(CliText, TokenizeAndDetokenizeFixtureModels) {
  for (const auto& [model, kind] : kModelKinds) {
    SCOPED_TRACE(model);
    const std::string dir = SourcePath("tests/fixtures/models/" + model);
    ASSERT_EQ(ReadFile(dir + "/tokenizer.json"), ReadFile(SourcePath("tests/fixtures/tokenizers/" + kind + "/tokenizer.json")));
    int checked = 0;
    for (const json& c : ReadJsonl(SourcePath("tests/fixtures/tokenizers/" + kind + "/cases.jsonl"), 400)) {
      const std::string text = c["text"];
      if (text.empty() || text.find('\0') != std::string::npos) continue;  // not passable as argv
      if (++checked > 12) break;
      SCOPED_TRACE(text);
      CliResult r = RunLserve({"tokenize", "--model", dir, "--text", text});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(json::parse(r.out)["ids"], c["ids"]);
      r = RunLserve({"tokenize", "--model", dir, "--text", text, "--no-special"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(json::parse(r.out)["ids"], c["ids_no_special"]);
      if (c["ids"].empty()) continue;
      r = RunLserve({"detokenize", "--model", dir, "--ids", JoinIds(c["ids"])});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(json::parse(r.out)["text"], c["decoded"]);
      r = RunLserve({"detokenize", "--model", dir, "--ids", JoinIds(c["ids"]), "--skip-special"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(json::parse(r.out)["text"], c["decoded_skip_special"]);
    }
    EXPECT_GT(checked, 10);
  }
}

TEST(CliText, DemoModelTokenizeMatchesTransformers) {
  ASSERT_TRUE(fs::exists(DemoModelPath())) << "run tools/fetch_demo_model.sh";
  int checked = 0;
  for (const json& c : ReadJsonl(SourcePath("tests/fixtures/demo/tokenize.jsonl"), 40)) {
    const std::string text = c["text"];
    if (text.empty() || text.find('\0') != std::string::npos) continue;
    SCOPED_TRACE(text);
    ++checked;
    const CliResult r = RunLserve({"tokenize", "--model", DemoModelPath(), "--text", text});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["ids"], c["ids"]);
  }
  EXPECT_GT(checked, 10);
  // No --model: the demo model is the default.
  const CliResult r = RunLserve({"tokenize", "--text", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["ids"], json::parse("[19556, 905]"));
}

TEST(CliText, DemoModelRenderChatMatchesTransformers) {
  ASSERT_TRUE(fs::exists(DemoModelPath())) << "run tools/fetch_demo_model.sh";
  const json cases = json::parse(ReadFile(SourcePath("tests/fixtures/demo/chat.json")));
  ASSERT_FALSE(cases.empty());
  for (const json& c : cases) {
    const std::string path = TempPath("messages.json");
    WriteFile(path, c["messages"].dump());
    std::vector<std::string> args = {"render-chat", "--model", DemoModelPath(), "--messages", path};
    if (!c["add_generation_prompt"].get<bool>()) args.push_back("--no-generation-prompt");
    const CliResult r = RunLserve(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["text"], c["text"]);
    EXPECT_EQ(j["ids"], c["ids"]);
  }
}

TEST(CliText, FixtureModelsRenderTheirTemplates) {
  const std::string path = TempPath("messages.json");
  WriteFile(path, R"([{"role":"user","content":"Hi there"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"2+2?"}])");
  for (const auto& [model, kind] : kModelKinds) {
    SCOPED_TRACE(model);
    const CliResult r = RunLserve({"render-chat", "--model", SourcePath("tests/fixtures/models/" + model), "--messages", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_NE(j["text"].get<std::string>().find("2+2?"), std::string::npos);
    EXPECT_FALSE(j["ids"].empty());
  }
}

TEST(CliText, BadInputsAreExit2WithAMessage) {
  const std::string model = SourcePath("tests/fixtures/models/llama3_gqa");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string bad_json = TempPath("bad.json");
  WriteFile(bad_json, "[{\"role\": ");
  const std::string not_array = TempPath("obj.json");
  WriteFile(not_array, R"({"role":"user","content":"x"})");
  const std::string no_role = TempPath("norole.json");
  WriteFile(no_role, R"([{"content":"x"}])");
  const std::string bad_alternation = TempPath("alternation.json");
  WriteFile(bad_alternation, R"([{"role":"user","content":"a"},{"role":"user","content":"b"}])");
  const std::vector<Case> cases = {
      {{"detokenize", "--model", model, "--ids", "1,99999999"}, "out of vocabulary"},
      {{"detokenize", "--model", model, "--ids", "1,-2"}, "out of vocabulary"},
      {{"detokenize", "--model", model, "--ids", "1,x"}, "not an integer"},
      {{"detokenize", "--model", model, "--ids", "1,,2"}, "empty item"},
      {{"render-chat", "--model", model, "--messages", bad_json}, "not valid JSON"},
      {{"render-chat", "--model", model, "--messages", not_array}, "array"},
      {{"render-chat", "--model", model, "--messages", no_role}, "role"},
      {{"render-chat", "--model", model, "--messages", "/nonexistent.json"}, "nonexistent.json"},
      // Llama-2's template raises on non-alternating roles.
      {{"render-chat", "--model", SourcePath("tests/fixtures/models/llama2_mha_sharded"), "--messages", bad_alternation},
       "alternate"},
      {{"tokenize", "--model", model}, "--text"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args.back());
    const CliResult r = RunLserve(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace lserve::e2e

namespace lserve::e2e {
namespace {

// A copy of a fixture model folder to edit.
std::string CopyFixtureModel(const std::string& name) {
  const std::string dir = TempPath(name);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(SourcePath("tests/fixtures/models/" + name)))
    fs::copy(e.path(), dir + "/" + e.path().filename().string());
  return dir;
}

std::string RenderedText(const std::string& model_dir) {
  const std::string messages = TempPath("messages.json");
  WriteFile(messages, R"([{"role":"user","content":"hi"}])");
  const CliResult r = RunLserve({"render-chat", "--model", model_dir, "--messages", messages, "--no-generation-prompt"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out)["text"].get<std::string>() : "";
}

TEST(CliText, ChatTemplateSources) {
  // chat_template.jinja wins over tokenizer_config.json.
  const std::string a = CopyFixtureModel("llama3_gqa");
  WriteFile(a + "/chat_template.jinja", "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}");
  EXPECT_EQ(RenderedText(a), "[user]hi");
  // A list of named templates in tokenizer_config.json: "default" is used.
  const std::string b = CopyFixtureModel("llama3_gqa");
  json config = json::parse(ReadFile(b + "/tokenizer_config.json"));
  config["chat_template"] = json::parse(
      R"([{"name":"tool_use","template":"T"},{"name":"default","template":"D{{ messages[0].content }}"}])");
  WriteFile(b + "/tokenizer_config.json", config.dump());
  EXPECT_EQ(RenderedText(b), "Dhi");
  // No template at all: a clear error.
  config.erase("chat_template");
  WriteFile(b + "/tokenizer_config.json", config.dump());
  const std::string messages = TempPath("messages.json");
  WriteFile(messages, R"([{"role":"user","content":"hi"}])");
  const CliResult r = RunLserve({"render-chat", "--model", b, "--messages", messages});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lserve::e2e
