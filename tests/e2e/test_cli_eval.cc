// lserve eval through the binary: the JSON it prints, the exactness rule seen
// through the eval (LServe that reads every page == dense, answer for answer
// and logit for logit), sparse runs reading fewer pages, and bad flags.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace lserve::e2e {
namespace {

using nlohmann::json;

const char* kModel = "tests/fixtures/models/llama3_gqa";   // 3 layers x 2 KV heads
const char* kPattern = "0.3\t0.9\n0.1\t0.1\n1.2\t0.95\n";  // at 0.5: {{0,1},{0,0},{1,1}}

json Eval(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"eval", "--model", SourcePath(kModel), "--page-size", "16",
                                   "--logical-page-size", "4", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = RunLserve(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

std::string PatternFile() {
  const std::string path = TempPath("eval_pattern.tsv");
  WriteFile(path, kPattern);
  return path;
}

TEST(CliEval, PasskeyWithEveryPageReadMatchesDenseAnswerForAnswer) {
  const json j = Eval({"--task", "passkey", "--lengths", "300,500", "--depths", "0,1", "--answer-tokens", "6",
                       "--attn-pattern", PatternFile(), "--streaming-ratio", "0", "--token-budget", "100000"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["task"], "passkey");
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["attention"], "lserve");
  EXPECT_EQ(j["runs"][1]["attention"], "dense");
  EXPECT_EQ(j["runs"][1]["same_output_as_first"], 1.0);
  for (const json& run : j["runs"]) {
    ASSERT_EQ(run["cases"].size(), 4u);
    const double accuracy = run["accuracy"];
    EXPECT_GE(accuracy, 0.0);
    EXPECT_LE(accuracy, 1.0);
    EXPECT_TRUE(run["accuracy_by_length"].contains("300") && run["accuracy_by_length"].contains("500"));
    for (const json& c : run["cases"]) {
      EXPECT_LE(c["tokens"].get<int64_t>(), c["length"].get<int64_t>());
      EXPECT_GT(c["tokens"].get<int64_t>(), c["length"].get<int64_t>() - 40);
      EXPECT_EQ(c["answer"].get<std::string>().size(), 5u);
    }
  }
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(j["runs"][0]["cases"][i], j["runs"][1]["cases"][i]);
}

TEST(CliEval, SparseNeedleRunReadsFewerPages) {
  const json j = Eval({"--task", "needle", "--lengths", "400", "--depths", "0.5", "--trials", "2", "--no-baseline",
                       "--attn-pattern", PatternFile(), "--prefill-sink", "16", "--prefill-local", "64",
                       "--decode-sink", "16", "--decode-local", "32", "--token-budget", "64", "--prefill-chunk", "64"});
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j["runs"].size(), 1u);
  const json& run = j["runs"][0];
  EXPECT_EQ(run["attention"], "lserve");
  EXPECT_EQ(run["cases"].size(), 2u);
  EXPECT_EQ(run["cases"][0]["answer"].get<std::string>().size(), 7u);
  EXPECT_NE(run["cases"][0]["answer"], run["cases"][1]["answer"]);
  const json& s = run["sparsity"];
  EXPECT_LT(s["prefill_blocks_visited"].get<int64_t>(), s["prefill_blocks_dense"].get<int64_t>());
  EXPECT_LT(s["decode_pages_read"].get<int64_t>(), s["decode_pages_dense"].get<int64_t>());
}

TEST(CliEval, PerplexityWithEveryPageReadEqualsDenseAndScoresEveryToken) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + ". ";
  const std::string path = TempPath("eval_text.txt");
  WriteFile(path, text);
  const json j = Eval({"--task", "perplexity", "--text", path, "--decode-tokens", "40", "--attn-pattern", PatternFile(),
                       "--streaming-ratio", "0", "--token-budget", "100000"});
  ASSERT_TRUE(j.is_object());
  const int64_t n = j["tokens"];
  EXPECT_EQ(j["decode_from"], n - 41);
  ASSERT_EQ(j["runs"].size(), 2u);
  const json& lserve = j["runs"][0];
  const json& dense = j["runs"][1];
  for (const char* part : {"all", "prefill", "decode"}) {
    EXPECT_EQ(lserve[part]["perplexity"], dense[part]["perplexity"]) << part;
    EXPECT_GT(dense[part]["perplexity"].get<double>(), 1.0) << part;
  }
  EXPECT_EQ(dense["decode"]["tokens"], 40);
  EXPECT_EQ(dense["all"]["tokens"], n - 1);
  EXPECT_EQ(dense["argmax_agreement_with_first"], 1.0);
  EXPECT_EQ(dense["decode_argmax_agreement_with_first"], 1.0);

  // Small windows and budget: the decode steps read fewer pages and the
  // likelihood changes; --max-length caps the tokens scored.
  const json sparse = Eval({"--task", "perplexity", "--text", path, "--decode-tokens", "60", "--max-length", "200",
                            "--attn-pattern", PatternFile(), "--decode-sink", "8", "--decode-local", "16",
                            "--token-budget", "32", "--no-baseline"});
  ASSERT_TRUE(sparse.is_object());
  EXPECT_EQ(sparse["tokens"], 200);
  const json& s = sparse["runs"][0]["sparsity"];
  EXPECT_LT(s["decode_pages_read"].get<int64_t>(), s["decode_pages_dense"].get<int64_t>());
}

TEST(CliEval, AFolderIsItsFilesInNameOrder) {
  const std::string dir = TempPath("eval_folder");
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/b.txt", "The second essay ends here.");
  WriteFile(dir + "/a.txt", "The first essay starts here.");
  const std::string joined = TempPath("eval_joined.txt");
  WriteFile(joined, "The first essay starts here.\n\nThe second essay ends here.");
  const json from_dir = Eval({"--task", "perplexity", "--text", dir, "--attention", "dense", "--decode-tokens", "3"});
  const json from_file = Eval({"--task", "perplexity", "--text", joined, "--attention", "dense", "--decode-tokens", "3"});
  ASSERT_TRUE(from_dir.is_object() && from_file.is_object());
  EXPECT_EQ(from_dir["tokens"], from_file["tokens"]);
  EXPECT_EQ(from_dir["runs"][0]["all"], from_file["runs"][0]["all"]);
  const json needle = Eval({"--task", "needle", "--haystack", dir, "--lengths", "200", "--depths", "0.5",
                            "--attention", "dense"});
  ASSERT_TRUE(needle.is_object());
  EXPECT_EQ(needle["runs"].size(), 1u);
  const std::string empty = TempPath("eval_empty_folder");
  std::filesystem::create_directories(empty);
  const CliResult r = RunLserve({"eval", "--model", SourcePath(kModel), "--task", "needle", "--haystack", empty});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no text files"), std::string::npos) << r.err;
}

TEST(CliEval, BadFlagsAreUsageErrors) {
  const std::string model = SourcePath(kModel);
  const CliResult no_text = RunLserve({"eval", "--model", model, "--task", "perplexity"});
  EXPECT_EQ(no_text.exit_code, 2);
  EXPECT_NE(no_text.err.find("--text"), std::string::npos) << no_text.err;
  EXPECT_EQ(RunLserve({"eval", "--model", model, "--depths", "0,1.5"}).exit_code, 2);
  EXPECT_EQ(RunLserve({"eval", "--model", model, "--lengths", "4"}).exit_code, 2);
  EXPECT_EQ(RunLserve({"eval", "--model", model, "--task", "summarize"}).exit_code, 2);
  const CliResult tiny = RunLserve({"eval", "--model", model, "--lengths", "20", "--attention", "dense"});
  EXPECT_EQ(tiny.exit_code, 2);
  EXPECT_NE(tiny.err.find("cannot hold"), std::string::npos) << tiny.err;
  const CliResult missing =
      RunLserve({"eval", "--model", model, "--task", "needle", "--haystack", TempPath("no_such_haystack.txt")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no_such_haystack"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace lserve::e2e
