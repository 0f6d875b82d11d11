// `lserve inspect --attn-pattern P --streaming-ratio R`: head roles of a model.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace lserve::e2e {
namespace {

using nlohmann::json;
using Roles = std::vector<std::vector<int>>;

const char* kGqaModel = "tests/fixtures/models/llama3_gqa";  // 3 layers x 2 KV heads

// Sorted by (clipped gate, layer, head): (0.1, 1, 0), (0.1, 1, 1), (0.3, 0, 0),
// (0.9, 0, 1), (0.95, 2, 1), (1.0, 2, 0).
const char* kGqaPattern = "0.3\t0.9\n0.1\t0.1\n1.2\t0.95\n";

CliResult InspectRoles(const std::string& pattern, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"inspect", "--model", SourcePath(kGqaModel), "--attn-pattern", pattern};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunLserve(args);
}

Roles RolesOf(const CliResult& r) { return json::parse(r.out).at("roles").get<Roles>(); }

TEST(CliRoles, PrintsTheGlobalQuantileSplit) {
  const std::string pattern = TempPath("gqa_pattern.tsv");
  WriteFile(pattern, kGqaPattern);
  const CliResult r = InspectRoles(pattern, {"--streaming-ratio", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  // The rest of the output is still there.
  EXPECT_EQ(j["config"]["num_hidden_layers"], 3);
  EXPECT_EQ(j["config"]["num_key_value_heads"], 2);
  EXPECT_TRUE(j.contains("tensors"));
  // Layer 1 has no retrieval head, layer 2 no streaming head.
  EXPECT_EQ(RolesOf(r), (Roles{{0, 1}, {0, 0}, {1, 1}}));

  const CliResult sixth = InspectRoles(pattern, {"--streaming-ratio", "0.17"});  // round(1.02) = 1
  ASSERT_EQ(sixth.exit_code, 0) << sixth.err;
  EXPECT_EQ(RolesOf(sixth), (Roles{{1, 1}, {0, 1}, {1, 1}}));
  const CliResult none = InspectRoles(pattern, {"--streaming-ratio", "0"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(RolesOf(none), (Roles{{1, 1}, {1, 1}, {1, 1}}));
  const CliResult all = InspectRoles(pattern, {"--streaming-ratio", "1"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(RolesOf(all), (Roles{{0, 0}, {0, 0}, {0, 0}}));
}

TEST(CliRoles, FolderAndDefaultRatio) {
  const std::string dir = TempPath("gqa_pattern_dir");
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/full_attention_heads.tsv", kGqaPattern);
  const CliResult r = InspectRoles(dir);  // ratio defaults to 0.5
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(RolesOf(r), (Roles{{0, 1}, {0, 0}, {1, 1}}));
}

TEST(CliRoles, NoRolesWithoutThePattern) {
  const CliResult r = RunLserve({"inspect", "--model", SourcePath(kGqaModel)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(json::parse(r.out).contains("roles"));
}

TEST(CliRoles, MismatchedPatternIsExit2) {
  const std::string pattern = TempPath("wide_pattern.tsv");
  WriteFile(pattern, "0.1\t0.2\t0.3\n0.4\t0.5\t0.6\n0.7\t0.8\t0.9\n");  // 3 x 3, the model has 3 x 2
  const CliResult r = InspectRoles(pattern, {"--streaming-ratio", "0.5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("3 layers x 3 KV heads"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 layers x 2 KV heads"), std::string::npos) << r.err;
}

TEST(CliRoles, BadInputsAreExit2) {
  const std::string corrupt = TempPath("corrupt_pattern.tsv");
  WriteFile(corrupt, "0.1\t0.2\n0.3\tnan\n0.5\t0.6\n");
  const CliResult bad_value = InspectRoles(corrupt);
  EXPECT_EQ(bad_value.exit_code, 2);
  EXPECT_NE(bad_value.err.find("line 2, column 2"), std::string::npos) << bad_value.err;

  const CliResult missing = InspectRoles(TempPath("no_such_pattern.tsv"));
  EXPECT_EQ(missing.exit_code, 2);

  const std::string pattern = TempPath("ok_pattern.tsv");
  WriteFile(pattern, kGqaPattern);
  EXPECT_EQ(InspectRoles(pattern, {"--streaming-ratio", "1.5"}).exit_code, 2);
  EXPECT_EQ(InspectRoles(pattern, {"--streaming-ratio", "abc"}).exit_code, 2);
}

// A ratio without a pattern calibrates the heads on a synthetic passkey text:
// the same split every time, with the asked share of streaming heads.
TEST(CliRoles, RatioAloneCalibratesOnAPasskeyText) {
  const CliResult a = RunLserve({"inspect", "--model", SourcePath(kGqaModel), "--streaming-ratio", "0.5"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const Roles roles = RolesOf(a);
  int streaming = 0;
  for (const auto& layer : roles)
    for (int r : layer) streaming += r == 0;
  EXPECT_EQ(streaming, 3);  // round(0.5 * 6)
  const CliResult b = RunLserve({"inspect", "--model", SourcePath(kGqaModel), "--streaming-ratio", "0.5"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(RolesOf(b), roles);
}

}  // namespace
}  // namespace lserve::e2e
