// Hostile and broken inputs (RELIABILITY.md B9-B11): corrupt tokenizer.json
// files give a clear error (never a crash or an out-of-bounds access), bad
// text and bad ids are handled, and 10^6-character runs cost linear time.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

// A small valid SentencePiece-style tokenizer.json.
json BaseDocument() {
  return json::parse(R"js({
    "version": "1.0",
    "added_tokens": [
      {"id": 0, "content": "<unk>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},
      {"id": 1, "content": "<s>", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}
    ],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
      "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "<0xC3>": 3, "<0xA9>": 4, "\u2581": 5, "a": 6, "b": 7, "\u2581a": 8},
      "merges": ["\u2581 a"]}
  })js");
}

Result<Tokenizer> Load(const json& doc) { return Tokenizer::FromHfJson(doc.dump(), ""); }

TEST(TokenizerRobustness, BaseDocumentWorks) {
  auto tok = Load(BaseDocument());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto ids = tok->Encode("a b\u00e9");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 8, 5, 7, 3, 4}));
  EXPECT_EQ(tok->Decode(*ids, true), "a b\u00e9");
}

TEST(TokenizerRobustness, CorruptDocumentsGiveClearErrors) {
  struct Corruption {
    const char* name;
    std::function<void(json&)> edit;
  };
  const std::vector<Corruption> cases = {
      {"no model", [](json& d) { d.erase("model"); }},
      {"model of another type", [](json& d) { d["model"]["type"] = "WordPiece"; }},
      {"vocab not an object", [](json& d) { d["model"]["vocab"] = json::array({"a"}); }},
      {"negative id", [](json& d) { d["model"]["vocab"]["a"] = -1; }},
      {"id as a string", [](json& d) { d["model"]["vocab"]["a"] = "6"; }},
      {"id beyond the id space", [](json& d) { d["model"]["vocab"]["a"] = 1LL << 40; }},
      {"two tokens with one id", [](json& d) { d["model"]["vocab"]["b"] = 6; }},
      {"merge of unknown tokens", [](json& d) { d["model"]["merges"].push_back("x y"); }},
      {"merge making an unknown token", [](json& d) { d["model"]["merges"].push_back("a b"); }},
      {"merge of three parts", [](json& d) { d["model"]["merges"].push_back("a b c"); }},
      {"merge of the wrong type", [](json& d) { d["model"]["merges"].push_back(7); }},
      {"random dropout", [](json& d) { d["model"]["dropout"] = 0.1; }},
      {"boolean field as a string", [](json& d) { d["model"]["byte_fallback"] = "yes"; }},
      {"added token id not a number", [](json& d) { d["added_tokens"][0]["id"] = "0"; }},
      {"added token without content", [](json& d) { d["added_tokens"][0].erase("content"); }},
      {"added tokens not an array", [](json& d) { d["added_tokens"] = json::object(); }},
      {"template id past the vocabulary", [](json& d) {
         d["post_processor"]["special_tokens"]["<s>"]["ids"] = json::array({100000});
       }},
      {"template naming a missing token", [](json& d) { d["post_processor"]["special_tokens"] = json::object(); }},
      {"template ids and tokens of different lengths", [](json& d) {
         d["post_processor"]["special_tokens"]["<s>"]["ids"] = json::array({1, 1});
       }},
      {"unknown normalizer", [](json& d) { d["normalizer"] = {{"type", "Shout"}}; }},
      {"bad regex", [](json& d) {
         d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"},
                               {"invert", false}};
       }},
      {"split without behavior", [](json& d) {
         d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"invert", false}};
       }},
      {"metaspace replacement of two characters", [](json& d) {
         d["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}};
       }},
      {"strip decoder with a stop", [](json& d) {
         d["decoder"] = {{"type", "Strip"}, {"content", " "}, {"start", 0}, {"stop", 1}};
       }},
      {"unknown version", [](json& d) { d["version"] = "2.0"; }},
      {"decoder of the wrong type", [](json& d) { d["decoder"] = "ByteLevel"; }},
  };
  for (const Corruption& c : cases) {
    json doc = BaseDocument();
    c.edit(doc);
    auto tok = Load(doc);
    EXPECT_FALSE(tok.ok()) << c.name;
    if (!tok.ok()) {
      EXPECT_FALSE(tok.status().message().empty()) << c.name;
    }
  }
  EXPECT_FALSE(Tokenizer::FromHfJson("{not json", "").ok());
  EXPECT_FALSE(Tokenizer::FromHfJson(BaseDocument().dump(), "[1, 2").ok());
  EXPECT_FALSE(Tokenizer::FromHfJson("[]", "").ok());
}

TEST(TokenizerRobustness, DeeplyNestedSequencesAreRefused) {
  json normalizer = {{"type", "Lowercase"}};
  for (int i = 0; i < 200; ++i) normalizer = {{"type", "Sequence"}, {"normalizers", json::array({normalizer})}};
  json doc = BaseDocument();
  doc["normalizer"] = normalizer;
  EXPECT_FALSE(Load(doc).ok());
}

// As in the tokenizers crate, an added token takes its vocabulary id or the
// next free one; the id the file states is not trusted.
TEST(TokenizerRobustness, AddedTokenIdsAreAssignedNotTrusted) {
  json doc = BaseDocument();
  doc["added_tokens"].push_back({{"id", 2000000000}, {"content", "<new>"}, {"special", true}});
  doc["added_tokens"].push_back({{"id", 1}, {"content", "<other>"}, {"special", false}});
  auto tok = Load(doc);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->TokenToId("<new>"), 9);
  EXPECT_EQ(tok->TokenToId("<other>"), 10);
  EXPECT_EQ(tok->vocab_size(), 11);
  // <other> is normalized (not special): it matches as "\u2581<other>".
  auto ids = tok->Encode("<new>a <other>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{9, 8, 10}));
  ids = tok->Encode("<new>a<other>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{9, 8, 0}));
}

TEST(TokenizerRobustness, ByteTokensThatAreNotBytesStayPlainTokens) {
  json doc = BaseDocument();
  doc["model"]["vocab"]["<0xZZ>"] = 9;
  doc["model"]["vocab"]["<0x-1>"] = 10;
  auto tok = Load(doc);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{9, 10, 2}), "<0xZZ><0x-1>A");
}

TEST(TokenizerRobustness, InvalidUtf8TextIsAnError) {
  auto tok = Load(BaseDocument());
  ASSERT_TRUE(tok.ok());
  for (const std::string& bad : {std::string("a\xC3"), std::string("\xFF"), std::string("\xED\xA0\x80"),
                                std::string("\xC0\xAF")}) {
    auto ids = tok->Encode(bad);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(tok->Encode(std::string("a\0b", 3)).ok());
}

TEST(TokenizerRobustness, OutOfRangeIdsAreSkippedByDecode) {
  auto tok = Load(BaseDocument());
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> ids = {-1, 8, 1 << 30, 2147483647, -2147483647 - 1, 7, 9};
  EXPECT_EQ(tok->Decode(ids), "ab");
  EXPECT_FALSE(tok->IdToToken(-5).has_value());
  EXPECT_FALSE(tok->IdToToken(1 << 30).has_value());
  EXPECT_FALSE(tok->IsSpecial(-1));
  IncrementalDecoder decoder(*tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += decoder.Push(id);
  streamed += decoder.Flush();
  EXPECT_EQ(streamed, "ab");
}

// A Tokenizer is shared by request threads: concurrent encodes (which share
// the word cache and the regex state per thread) give the serial results.
TEST(TokenizerRobustness, ConcurrentEncodesAgree) {
  const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/qwen2";
  auto tok = Tokenizer::FromHfJson(*ReadTextFile(dir + "/tokenizer.json"), *ReadTextFile(dir + "/tokenizer_config.json"));
  ASSERT_TRUE(tok.ok());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("word" + std::to_string(i % 37) + " \u00e9t\u00e9 " + std::to_string(i * 7919) + " <|im_start|>x");
  }
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(*tok->Encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i * (w + 1) + round) % texts.size();
          auto ids = tok->Encode(texts[k]);
          if (!ids.ok() || *ids != expected[k]) ++mismatches[w];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// 10^6-character runs of each kind of character through every fixture
// tokenizer: no crash (no recursive regex), and about linear time. The bound
// is loose (a shared 2-core machine is noisy, and BPE's heap adds a log
// factor to one long word): 10x the characters may take at most 30x the time.
double SecondsToEncode(const Tokenizer& tok, const std::string& text, size_t* n_ids) {
  double best = 1e9;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    auto ids = tok.Encode(text, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    if (ids.ok()) *n_ids = ids->size();
    best = std::min(best, s);
  }
  return best;
}

std::string Repeat(const std::string& unit, size_t bytes) {
  std::string s;
  s.reserve(bytes + unit.size());
  while (s.size() < bytes) s += unit;
  return s;
}

TEST(TokenizerRobustness, MillionCharacterRunsScaleLinearly) {
  const std::vector<std::string> kinds = {"gpt2", "llama3", "qwen2", "llama2_spm", "mistral_spm"};
  // Every character class of RELIABILITY.md B10 in one run, plus the two
  // runs that make single million-character words (the worst case).
  const std::vector<std::string> units = {"a Z 1 . \u5b57 \u00e9 \n ", " ", "."};
  for (const std::string& kind : kinds) {
    const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + kind;
    auto tokenizer_json = ReadTextFile(dir + "/tokenizer.json");
    auto config_json = ReadTextFile(dir + "/tokenizer_config.json");
    ASSERT_TRUE(tokenizer_json.ok() && config_json.ok()) << "missing fixture " << dir;
    auto tok = Tokenizer::FromHfJson(*tokenizer_json, *config_json);
    ASSERT_TRUE(tok.ok());
    for (const std::string& unit : units) {
      if (kind != "llama3" && unit.size() == 1) continue;  // the long-word runs once suffice
      size_t small_ids = 0, big_ids = 0;
      const double small = SecondsToEncode(*tok, Repeat(unit, 100'000), &small_ids);
      const double big = SecondsToEncode(*tok, Repeat(unit, 1'000'000), &big_ids);
      EXPECT_GT(big_ids, small_ids);
      EXPECT_LE(big, 30 * small + 0.05) << kind << " unit " << json(unit).dump() << ": 10^5 chars " << small
                                        << " s, 10^6 chars " << big << " s";
    }
  }
}

}  // namespace
}  // namespace lserve
