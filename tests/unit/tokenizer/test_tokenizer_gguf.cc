// Tokenizer::FromGguf on GGUF files written here from the fixture
// vocabularies, against what transformers' GGUF loader (5.24) gives for the
// same files; and the GGUF tokenizer metadata a hostile file can get wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

// A GGUF v3 file with metadata only (no tensors).
class GgufBuilder {
 public:
  void String(const std::string& key, const std::string& v) {
    Key(key, 8);
    Str(v);
  }
  void U32(const std::string& key, uint32_t v) {
    Key(key, 4);
    Pod(v);
  }
  void Bool(const std::string& key, bool v) {
    Key(key, 7);
    bytes_.push_back(v ? 1 : 0);
  }
  void Strings(const std::string& key, const std::vector<std::string>& v) {
    Key(key, 9);
    Pod(uint32_t{8});
    Pod(uint64_t{v.size()});
    for (const auto& s : v) Str(s);
  }
  void I32s(const std::string& key, const std::vector<int32_t>& v) {
    Key(key, 9);
    Pod(uint32_t{5});
    Pod(uint64_t{v.size()});
    for (int32_t x : v) Pod(x);
  }
  void F32s(const std::string& key, const std::vector<float>& v) {
    Key(key, 9);
    Pod(uint32_t{6});
    Pod(uint64_t{v.size()});
    for (float x : v) Pod(x);
  }
  std::vector<uint8_t> Finish() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    auto put = [&](auto v) {
      const auto* p = reinterpret_cast<const uint8_t*>(&v);
      out.insert(out.end(), p, p + sizeof(v));
    };
    put(uint32_t{3});
    put(uint64_t{0});
    put(n_kv_);
    out.insert(out.end(), bytes_.begin(), bytes_.end());
    while (out.size() % 32 != 0) out.push_back(0);
    return out;
  }

 private:
  template <typename T>
  void Pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(v));
  }
  void Str(const std::string& s) {
    Pod(uint64_t{s.size()});
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void Key(const std::string& key, uint32_t type) {
    ++n_kv_;
    Str(key);
    Pod(type);
  }
  std::vector<uint8_t> bytes_;
  uint64_t n_kv_ = 0;
};

// The vocabulary of a fixture's tokenizer.json by id, with the GGUF token
// types llama.cpp's converter gives (special added = CONTROL, other added =
// USER_DEFINED, <0xXX> = BYTE in SentencePiece vocabularies).
struct FixtureVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

FixtureVocab LoadFixtureVocab(const std::string& kind, bool spm) {
  const auto text = ReadTextFile(std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + kind + "/tokenizer.json");
  EXPECT_TRUE(text.ok()) << "missing fixture " << kind;
  FixtureVocab v;
  if (!text.ok()) return v;
  const json doc = json::parse(*text);
  for (const auto& [token, id] : doc["model"]["vocab"].items()) {
    const size_t i = id.get<size_t>();
    if (v.tokens.size() <= i) v.tokens.resize(i + 1);
    v.tokens[i] = token;
  }
  std::vector<int> added_kind(v.tokens.size(), 0);
  for (const json& a : doc["added_tokens"]) {
    const size_t i = a["id"].get<size_t>();
    if (v.tokens.size() <= i) v.tokens.resize(i + 1), added_kind.resize(i + 1, 0);
    v.tokens[i] = a["content"].get<std::string>();
    added_kind[i] = a["special"].get<bool>() ? 3 : 4;
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string& t = v.tokens[i];
    const bool byte = spm && t.size() == 6 && t.compare(0, 3, "<0x") == 0;
    v.types.push_back(added_kind[i] != 0 ? added_kind[i] : byte ? 6 : 1);
  }
  for (const json& m : doc["model"]["merges"]) {
    v.merges.push_back(m.is_string() ? m.get<std::string>()
                                     : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  return v;
}

std::shared_ptr<const GgufFile> Parse(const GgufBuilder& b) {
  auto file = GgufFile::ParseOwned(b.Finish(), "test.gguf");
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? *file : nullptr;
}

using Encodings = std::vector<std::pair<std::string, std::vector<int32_t>>>;

void ExpectEncodings(const Tokenizer& tok, const Encodings& cases) {
  for (const auto& [text, ids] : cases) {
    auto got = tok.Encode(text);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, ids) << json(text).dump();
  }
}

// A SentencePiece vocabulary without merges: transformers derives them from
// the scores (here -id for normal pieces) and adds BOS by default.
TEST(GgufTokenizer, LlamaVocabularyWithScoresMatchesTransformers) {
  const FixtureVocab v = LoadFixtureVocab("llama2_spm", true);
  ASSERT_FALSE(v.tokens.empty());
  std::vector<float> scores;
  for (size_t i = 0; i < v.tokens.size(); ++i) scores.push_back(v.types[i] == 1 ? -static_cast<float>(i) : 0.f);
  GgufBuilder b;
  b.String("general.architecture", "llama");
  b.String("tokenizer.ggml.model", "llama");
  b.Strings("tokenizer.ggml.tokens", v.tokens);
  b.I32s("tokenizer.ggml.token_type", v.types);
  b.F32s("tokenizer.ggml.scores", scores);
  b.U32("tokenizer.ggml.bos_token_id", 1);
  b.U32("tokenizer.ggml.eos_token_id", 2);
  b.U32("tokenizer.ggml.unknown_token_id", 0);
  b.Bool("tokenizer.ggml.add_bos_token", true);
  auto file = Parse(b);
  ASSERT_TRUE(file);
  auto tok = Tokenizer::FromGguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->num_tokens(), 1161);
  EXPECT_EQ(tok->special_tokens().bos_token, std::optional<std::string>("<s>"));
  EXPECT_EQ(tok->special_tokens().unk_token, std::optional<std::string>("<unk>"));
  ExpectEncodings(*tok, {
      {"Hello world", {1, 491, 1141, 1069}},
      {" two  spaces", {1, 904, 383, 421, 335, 774, 338}},
      {"a<s>b </s> c", {1, 422, 1, 321, 383, 2, 444}},
      {"x<|begin_of_text|>y<|endoftext|>", {1, 903, 289, 346, 321, 324, 326, 424, 319, 334, 325, 319, 339,
                                            324, 715, 346, 291, 344, 289, 346, 427, 323, 334, 554, 324, 715, 346, 291}},
      {"\u00e9 12 \u00e9\u0301 \u4e2d", {1, 383, 352, 383, 278, 279, 383, 352, 207, 132, 383, 231, 187, 176}},
      {"", {1}},
  });
  const std::vector<int32_t> ids = {1, 491, 1141, 1069, 383, 352};
  EXPECT_EQ(tok->Decode(ids), "<s> Hello world \u00e9");
  EXPECT_EQ(tok->Decode(ids, true), "Hello world \u00e9");
}

// A byte-level vocabulary with merges and the llama-bpe pre-tokenizer.
TEST(GgufTokenizer, ByteLevelVocabularyWithLlama3SplitMatchesTransformers) {
  const FixtureVocab v = LoadFixtureVocab("llama3", false);
  ASSERT_FALSE(v.tokens.empty());
  GgufBuilder b;
  b.String("general.architecture", "llama");
  b.String("tokenizer.ggml.model", "gpt2");
  b.String("tokenizer.ggml.pre", "llama-bpe");
  b.Strings("tokenizer.ggml.tokens", v.tokens);
  b.I32s("tokenizer.ggml.token_type", v.types);
  b.Strings("tokenizer.ggml.merges", v.merges);
  b.U32("tokenizer.ggml.bos_token_id", 1100);
  b.U32("tokenizer.ggml.eos_token_id", 1109);
  b.Bool("tokenizer.ggml.add_bos_token", true);
  auto file = Parse(b);
  ASSERT_TRUE(file);
  auto tok = Tokenizer::FromGguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  // GPT2Tokenizer adds its default "<|endoftext|>" as a new special token.
  EXPECT_EQ(tok->num_tokens(), 1114);
  EXPECT_EQ(tok->special_tokens().eos_token, std::optional<std::string>("<|eot_id|>"));
  ExpectEncodings(*tok, {
      {"Hello world", {1100, 1023, 928}},
      {" two  spaces", {1100, 842, 220, 258, 79, 64, 323, 82}},
      {"a<s>b </s> c", {1100, 64, 27, 82, 29, 65, 665, 14, 82, 29, 292}},
      {"x<|begin_of_text|>y<|endoftext|>", {1100, 87, 1100, 88, 1113}},
      {"\u00e9 12 \u00e9\u0301 \u4e2d", {1100, 972, 220, 482, 948, 102, 136, 223, 220, 1044, 255}},
      {"", {1100}},
  });
  const std::vector<int32_t> ids = {1100, 1023, 928, 948, 102};
  EXPECT_EQ(tok->Decode(ids), "<|begin_of_text|>Hello world \u00e9");
  EXPECT_EQ(tok->Decode(ids, true), "Hello world \u00e9");
}

// A minimal valid llama vocabulary, then one defect at a time.
GgufBuilder SmallLlamaGguf(const std::function<void(GgufBuilder&, std::vector<std::string>&, std::vector<float>&)>& edit) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a"};
  std::vector<float> scores = {0, 0, 0, -1, -2, -3, -4};
  GgufBuilder b;
  b.String("tokenizer.ggml.model", "llama");
  edit(b, tokens, scores);
  b.Strings("tokenizer.ggml.tokens", tokens);
  b.F32s("tokenizer.ggml.scores", scores);
  return b;
}

TEST(GgufTokenizer, SmallVocabularyLoads) {
  auto file = Parse(SmallLlamaGguf([](GgufBuilder& b, auto&, auto&) { b.U32("tokenizer.ggml.bos_token_id", 1); }));
  ASSERT_TRUE(file);
  auto tok = Tokenizer::FromGguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto ids = tok->Encode("ab a");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 6, 5, 6}));
}

TEST(GgufTokenizer, RejectsBadTokenizerMetadata) {
  struct Bad {
    const char* name;
    std::function<void(GgufBuilder&, std::vector<std::string>&, std::vector<float>&)> edit;
    StatusCode code;
  };
  const std::vector<Bad> cases = {
      {"bos id past the vocabulary", [](GgufBuilder& b, auto&, auto&) { b.U32("tokenizer.ggml.bos_token_id", 7); },
       StatusCode::kInvalidArgument},
      {"unknown pre-tokenizer", [](GgufBuilder& b, auto&, auto&) { b.String("tokenizer.ggml.pre", "no-such-pre"); },
       StatusCode::kUnimplemented},
      {"token that is not UTF-8", [](GgufBuilder&, auto& t, auto&) { t[4] = "\xC3"; }, StatusCode::kInvalidArgument},
      {"NaN score", [](GgufBuilder&, auto&, auto& s) { s[4] = std::nanf(""); }, StatusCode::kInvalidArgument},
      {"too few scores", [](GgufBuilder&, auto&, auto& s) { s.pop_back(); }, StatusCode::kInvalidArgument},
      {"merge of three parts",
       [](GgufBuilder& b, auto&, auto&) { b.Strings("tokenizer.ggml.merges", {"a b c"}); },
       StatusCode::kInvalidArgument},
      {"merge of unknown tokens",
       [](GgufBuilder& b, auto&, auto&) { b.Strings("tokenizer.ggml.merges", {"x y"}); },
       StatusCode::kInvalidArgument},
      {"bos id of the wrong type", [](GgufBuilder& b, auto&, auto&) { b.String("tokenizer.ggml.bos_token_id", "1"); },
       StatusCode::kInvalidArgument},
  };
  for (const Bad& c : cases) {
    auto file = Parse(SmallLlamaGguf(c.edit));
    ASSERT_TRUE(file) << c.name;
    auto tok = Tokenizer::FromGguf(*file);
    ASSERT_FALSE(tok.ok()) << c.name;
    EXPECT_EQ(tok.status().code(), c.code) << c.name << ": " << tok.status().ToString();
  }
}

TEST(GgufTokenizer, RejectsUnsupportedOrMissingModels) {
  {
    GgufBuilder b;
    b.String("tokenizer.ggml.model", "bert");
    b.Strings("tokenizer.ggml.tokens", {"a"});
    auto file = Parse(b);
    ASSERT_TRUE(file);
    EXPECT_EQ(Tokenizer::FromGguf(*file).status().code(), StatusCode::kUnimplemented);
  }
  {
    GgufBuilder b;
    b.String("tokenizer.ggml.model", "gpt2");
    auto file = Parse(b);
    ASSERT_TRUE(file);
    EXPECT_FALSE(Tokenizer::FromGguf(*file).ok());
  }
  {
    GgufBuilder b;
    b.String("general.architecture", "llama");
    auto file = Parse(b);
    ASSERT_TRUE(file);
    EXPECT_FALSE(Tokenizer::FromGguf(*file).ok());
  }
}

}  // namespace
}  // namespace lserve
