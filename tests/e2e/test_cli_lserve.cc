// The LServe attention through the binary: generate --json's kv and sparsity
// fields, the exactness rule seen from the CLI, logits --decode-from, and
// lserve calibrate.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "core/npy.h"

namespace lserve::e2e {
namespace {

using nlohmann::json;

const char* kModel = "tests/fixtures/models/llama3_gqa";  // 3 layers x 2 KV heads
const char* kPattern = "0.3\t0.9\n0.1\t0.1\n1.2\t0.95\n";  // at 0.5: {{0,1},{0,0},{1,1}}

std::string LongPrompt() {
  std::string s;
  for (int i = 0; i < 40; ++i) s += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + ". ";
  return s;
}

json Generate(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"generate", "--model", SourcePath(kModel), "--prompt", LongPrompt(),
                                   "--max-tokens", "24", "--ignore-eos", "--json", "--temperature", "0", "--page-size", "16",
                                   "--logical-page-size", "4"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = RunLserve(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

TEST(CliLServe, ExactnessRuleAndJsonFields) {
  const json dense = Generate({"--backend", "cpu-ref"});
  // Every head retrieval, budget above the context: the dense output.
  const json lserve = Generate({"--backend", "cpu-ref", "--attention", "lserve"});
  ASSERT_TRUE(dense.is_object() && lserve.is_object());
  EXPECT_EQ(dense["attention"], "dense");
  EXPECT_EQ(lserve["attention"], "lserve");
  EXPECT_EQ(dense["ids"], lserve["ids"]);
  for (const json* j : {&dense, &lserve}) {
    EXPECT_GT((*j)["kv"]["retrieval_bytes"].get<int64_t>(), 0);
    EXPECT_EQ((*j)["kv"]["streaming_bytes"].get<int64_t>(), 0);
    const json& s = (*j)["sparsity"];
    EXPECT_EQ(s["prefill_blocks_visited"], s["prefill_blocks_dense"]);
    EXPECT_EQ(s["decode_pages_read"], s["decode_pages_dense"]);
    EXPECT_GT(s["decode_pages_dense"].get<int64_t>(), 0);
  }
}

TEST(CliLServe, StreamingHeadsAndPageSelectionReadFewerPages) {
  const std::string pattern = TempPath("lserve_pattern.tsv");
  WriteFile(pattern, kPattern);
  const json j = Generate({"--attn-pattern", pattern, "--prefill-sink", "16", "--prefill-local", "64",
                           "--decode-sink", "16", "--decode-local", "32", "--token-budget", "64",
                           "--select-interval", "2", "--prefill-chunk", "64"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["attention"], "lserve");
  EXPECT_EQ(j["ids"].size(), 24u);
  EXPECT_GT(j["kv"]["streaming_bytes"].get<int64_t>(), 0);
  const json& s = j["sparsity"];
  EXPECT_LT(s["prefill_blocks_visited"].get<int64_t>(), s["prefill_blocks_dense"].get<int64_t>());
  EXPECT_LT(s["decode_pages_read"].get<int64_t>(), s["decode_pages_dense"].get<int64_t>());
}

TEST(CliLServe, BadAttentionFlagsAreExit2) {
  const std::string pattern = TempPath("lserve_pattern2.tsv");
  WriteFile(pattern, kPattern);
  const std::vector<std::vector<std::string>> bad = {
      {"--attention", "dense", "--attn-pattern", pattern},
      {"--attention", "sparse"},
      {"--attention", "lserve", "--token-budget", "8"},
      {"--page-size", "16", "--logical-page-size", "32"},
      {"--attention", "lserve", "--attn-pattern", pattern, "--prefill-chunk", "4096", "--prefill-local", "0"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"generate", "--model", SourcePath(kModel), "--prompt", "hi", "--max-tokens", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = RunLserve(args);
    EXPECT_EQ(r.exit_code, 2) << extra[1] << ": " << r.err;
  }
}

// logits --decode-from feeds the tail as decode steps; with the reference
// kernels and every head retrieval that is the dense path's bits.
TEST(CliLServe, LogitsDecodeFromMatchesDense) {
  std::string ids;
  for (int i = 0; i < 90; ++i) ids += (i ? "," : "") + std::to_string((i * 37 + 11) % 1000);
  auto run = [&](const std::string& name, const std::vector<std::string>& extra) {
    const std::string out = TempPath(name);
    std::vector<std::string> args = {"logits", "--model", SourcePath(kModel), "--ids", ids, "--out", out,
                                     "--backend", "cpu-ref", "--page-size", "16"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = RunLserve(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto a = ReadNpyF32(out);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->data : std::vector<float>();
  };
  const std::vector<float> dense = run("dense_decode.npy", {"--decode-from", "50"});
  const std::vector<float> lserve = run("lserve_decode.npy", {"--decode-from", "50", "--attention", "lserve"});
  const std::vector<float> prefill = run("dense_prefill.npy", {});
  ASSERT_EQ(dense.size(), prefill.size());
  ASSERT_EQ(dense.size(), lserve.size());
  EXPECT_EQ(std::memcmp(dense.data(), lserve.data(), dense.size() * sizeof(float)), 0);
  float diff = 0;
  for (size_t i = 0; i < dense.size(); ++i) diff = std::max(diff, std::fabs(dense[i] - prefill[i]));
  EXPECT_LT(diff, 1e-4f);  // decode rows and prefill rows: the same math, summed in another order
}

TEST(CliLServe, CalibrateWritesAPatternThatInspectReads) {
  const std::string out = TempPath("calibrated.tsv");
  const CliResult r =
      RunLserve({"calibrate", "--model", SourcePath(kModel), "--words", "600", "--sink", "16", "--local", "64",
                 "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["layers"], 3);
  EXPECT_EQ(j["kv_heads"], 2);
  for (double g : j["gates"].get<std::vector<double>>()) {
    EXPECT_GE(g, 0.0);
    EXPECT_LE(g, 1.0);
  }
  const CliResult inspect =
      RunLserve({"inspect", "--model", SourcePath(kModel), "--attn-pattern", out, "--streaming-ratio", "0.5"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(json::parse(inspect.out)["roles"].size(), 3u);
  // A window as long as the text leaves nothing to measure.
  EXPECT_EQ(RunLserve({"calibrate", "--model", SourcePath(kModel), "--words", "64", "--local", "100000", "--out",
                       TempPath("never.tsv")})
                .exit_code,
            2);
}

}  // namespace
}  // namespace lserve::e2e
