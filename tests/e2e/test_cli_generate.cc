// generate / logits / chat through the binary, against transformers' goldens.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "core/npy.h"

namespace lserve::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string JoinIds(const json& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ",") + std::to_string(id.get<int64_t>());
  return s;
}

const std::vector<std::string> kModels = {"llama3_gqa", "qwen2_tied", "mistral_mqa", "llama2_mha_sharded", "llama_yarn"};

TEST(CliGenerate, GreedyContinuationsEqualTransformers) {
  for (const std::string& model : kModels) {
    const std::string dir = SourcePath("tests/fixtures/models/" + model);
    const json golden = json::parse(ReadFile(dir + "/golden.json"));
    for (const char* prompt : {"short", "long"}) {
      SCOPED_TRACE(model + "/" + prompt);
      const json& p = golden["prompts"][prompt];
      const CliResult r = RunLserve({"generate", "--model", dir, "--ids", JoinIds(p["ids"]), "--max-tokens",
                                     std::to_string(p["greedy"].size()), "--ignore-eos", "--json", "--prefill-chunk", "7", "--temperature", "0",
                                     "--repetition-penalty", "1"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const json j = json::parse(r.out);
      EXPECT_EQ(j["ids"], p["greedy"]);
      EXPECT_EQ(j["finish_reason"], "length");
      EXPECT_EQ(j["timings"]["prompt_tokens"], p["ids"].size());
    }
  }
}

TEST(CliGenerate, DemoModelAnswersParis) {
  ASSERT_TRUE(fs::exists(DemoModelPath())) << "run tools/fetch_demo_model.sh";
  const json golden = json::parse(ReadFile(SourcePath("tests/fixtures/demo/golden.json")));
  const CliResult r = RunLserve({"generate", "--chat", "What is the capital of France?", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_NE(j["text"].get<std::string>().find("Paris"), std::string::npos) << j["text"];
  EXPECT_EQ(j["finish_reason"], "stop");
  // Greedy ids equal transformers' up to and including the EOS (<|im_end|>).
  const json& want = golden["france"]["greedy"];
  ASSERT_LE(j["ids"].size(), want.size());
  for (size_t i = 0; i < j["ids"].size(); ++i) EXPECT_EQ(j["ids"][i], want[i]) << i;
  // Streamed (no --json) prints the same text.
  const CliResult s = RunLserve({"generate", "--chat", "What is the capital of France?"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, j["text"].get<std::string>() + "\n");
}

TEST(CliGenerate, SameSeedSameOutput) {
  const std::string dir = SourcePath("tests/fixtures/models/qwen2_tied");
  auto run = [&](const std::string& seed) {
    const CliResult r = RunLserve({"generate", "--model", dir, "--prompt", "hello world", "--max-tokens", "24",
                                   "--temperature", "1.0", "--seed", seed, "--ignore-eos", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out)["ids"];
  };
  EXPECT_EQ(run("11"), run("11"));
  EXPECT_NE(run("11"), run("12"));
}

TEST(CliLogits, MatchTransformers) {
  for (const std::string& model : kModels) {
    SCOPED_TRACE(model);
    const std::string dir = SourcePath("tests/fixtures/models/" + model);
    const json golden = json::parse(ReadFile(dir + "/golden.json"));
    const json& p = golden["prompts"]["short"];
    const std::string out = TempPath("logits.npy");
    const CliResult r = RunLserve({"logits", "--model", dir, "--ids", JoinIds(p["ids"]), "--out", out, "--prefill-chunk", "5"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto ours = ReadNpyF32(out);
    auto want = ReadNpyF32(dir + "/" + p["logits_file"].get<std::string>());
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ASSERT_EQ(ours->shape, want->shape);
    double max_err = 0;
    for (size_t i = 0; i < want->data.size(); ++i)
      max_err = std::max(max_err, static_cast<double>(std::fabs(ours->data[i] - want->data[i])));
    EXPECT_LT(max_err, 1e-3);
  }
}

TEST(CliChat, AnswersFromStdin) {
  ASSERT_TRUE(fs::exists(DemoModelPath())) << "run tools/fetch_demo_model.sh";
  const std::string in = TempPath("chat_in.txt");
  WriteFile(in, "What is the capital of France?\n/exit\n");
  const CliResult r = RunLserve({"chat", "--max-tokens", "32"}, in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
}

TEST(CliGenerate, BadInputsAreExit2) {
  const std::string dir = SourcePath("tests/fixtures/models/llama3_gqa");
  const std::vector<std::vector<std::string>> cases = {
      {"generate", "--model", dir, "--ids", "1,999999"},
      {"generate", "--model", dir, "--ids", "1,2", "--prompt", "x"},
      {"generate", "--model", dir},
      {"generate", "--model", dir, "--prompt", "x", "--temperature", "-1"},
      {"generate", "--model", dir, "--prompt", "x", "--top-p", "0"},
      {"generate", "--model", dir, "--prompt", "x", "--seed", "-2"},
      {"generate", "--model", dir, "--prompt", "x", "--max-tokens", "0"},
      {"logits", "--model", dir, "--ids", "1,2", "--out", "/nonexistent-dir/x.npy"},
  };
  for (const auto& args : cases) {
    const CliResult r = RunLserve(args);
    EXPECT_EQ(r.exit_code, 2) << args.back() << ": " << r.out << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

}  // namespace
}  // namespace lserve::e2e
