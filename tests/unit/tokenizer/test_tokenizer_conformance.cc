// Differential test against the real Hugging Face libraries: every golden
// case that tools/fixtures/ recorded with transformers' AutoTokenizer must
// come out identical (ids with and without special tokens, decodes with and
// without skip_special_tokens). A missing fixture is a failure, not a skip.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

const std::string kFixtures = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures";

struct Case {
  std::string text;
  std::vector<int32_t> ids, ids_no_special;
  std::string decoded, decoded_skip_special;
};

std::vector<Case> ReadCases(const std::string& path) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    Case c;
    c.text = j.at("text").get<std::string>();
    c.ids = j.at("ids").get<std::vector<int32_t>>();
    c.ids_no_special = j.at("ids_no_special").get<std::vector<int32_t>>();
    c.decoded = j.at("decoded").get<std::string>();
    c.decoded_skip_special = j.at("decoded_skip_special").get<std::string>();
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string Show(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

// Runs every case; reports the first few differences and the totals.
void CheckCases(const Tokenizer& tok, const std::vector<Case>& cases, const std::string& kind) {
  int failures = 0;
  for (const Case& c : cases) {
    std::vector<std::string> problems;
    const auto ids = tok.Encode(c.text, true);
    const auto ids_ns = tok.Encode(c.text, false);
    if (!ids.ok() || *ids != c.ids) {
      problems.push_back("ids " + (ids.ok() ? Show(*ids) : ids.status().ToString()) + " want " + Show(c.ids));
    }
    if (!ids_ns.ok() || *ids_ns != c.ids_no_special) {
      problems.push_back("ids_no_special " + (ids_ns.ok() ? Show(*ids_ns) : ids_ns.status().ToString()) +
                         " want " + Show(c.ids_no_special));
    }
    if (tok.Decode(c.ids) != c.decoded) {
      problems.push_back("decoded " + json(tok.Decode(c.ids)).dump() + " want " + json(c.decoded).dump());
    }
    if (tok.Decode(c.ids, true) != c.decoded_skip_special) {
      problems.push_back("decoded_skip_special " + json(tok.Decode(c.ids, true)).dump() + " want " +
                         json(c.decoded_skip_special).dump());
    }
    if (!problems.empty()) {
      ++failures;
      if (failures <= 8) {
        std::string msg = kind + " text " + json(c.text).dump();
        for (const auto& p : problems) msg += "\n    " + p;
        ADD_FAILURE() << msg;
      }
    }
  }
  EXPECT_EQ(failures, 0) << kind << ": " << failures << " of " << cases.size() << " cases differ";
}

class HfConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(HfConformance, MatchesTransformersOnEveryCase) {
  const std::string dir = kFixtures + "/tokenizers/" + GetParam();
  auto tokenizer_json = ReadTextFile(dir + "/tokenizer.json");
  auto config_json = ReadTextFile(dir + "/tokenizer_config.json");
  ASSERT_TRUE(tokenizer_json.ok()) << "missing fixture: " << tokenizer_json.status().ToString();
  ASSERT_TRUE(config_json.ok()) << "missing fixture: " << config_json.status().ToString();
  auto tok = Tokenizer::FromHfJson(*tokenizer_json, *config_json);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<Case> cases = ReadCases(dir + "/cases.jsonl");
  ASSERT_GE(cases.size(), 5000u) << dir << "/cases.jsonl";
  CheckCases(*tok, cases, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kinds, HfConformance,
                         ::testing::Values("gpt2", "llama3", "qwen2", "llama2_spm", "mistral_spm"));

TEST(GgufConformance, DemoModelMatchesTransformersGgufLoader) {
  const std::string model = std::string(LSERVE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  auto file = GgufFile::Open(model);
  ASSERT_TRUE(file.ok()) << "demo model missing (run tools/setup.sh): " << file.status().ToString();
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<Case> cases = ReadCases(kFixtures + "/demo/tokenize.jsonl");
  ASSERT_FALSE(cases.empty()) << "missing fixture " << kFixtures << "/demo/tokenize.jsonl";
  CheckCases(*tok, cases, "demo");
}

}  // namespace
}  // namespace lserve
