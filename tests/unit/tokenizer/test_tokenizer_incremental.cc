// IncrementalDecoder: for random id streams of every fixture tokenizer (and
// the encodings of real texts), each chunk is well-formed UTF-8 and the
// chunks concatenate to Decode(all ids), with and without
// skip_special_tokens.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../fixture_tokenizer.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

// Streams `ids` and checks the invariants; returns false on the first failure.
void ExpectStreamsLikeDecode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                             const std::string& context) {
  IncrementalDecoder decoder(tok, skip_special);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string chunk = decoder.Push(id);
    ASSERT_TRUE(utf8::IsValid(chunk)) << context << ": chunk " << json(utf8::Sanitize(chunk)).dump();
    streamed += chunk;
  }
  const std::string rest = decoder.Flush();
  ASSERT_TRUE(utf8::IsValid(rest)) << context;
  streamed += rest;
  std::string ids_text;
  for (const int32_t id : ids) ids_text += std::to_string(id) + ",";
  EXPECT_EQ(streamed, tok.Decode(ids, skip_special)) << context << " ids [" << ids_text << "] skip=" << skip_special;
}

class IncrementalDecoding : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalDecoding, RandomIdStreamsConcatenateToDecode) {
  const Tokenizer tok = LoadFixtureTokenizer(GetParam());
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  const int32_t vocab = tok.vocab_size();
  // Ids whose tokens are byte pieces or special: the interesting ones.
  std::vector<int32_t> interesting;
  for (int32_t id = 0; id < vocab; ++id) {
    const auto token = tok.IdToToken(id);
    if (!token) continue;
    if (tok.IsSpecial(id) || token->rfind("<0x", 0) == 0 || token->size() == 1 ||
        token->find("\xE2\x96\x81") != std::string::npos) {
      interesting.push_back(id);
    }
  }
  ASSERT_FALSE(interesting.empty());
  std::uniform_int_distribution<int32_t> any_id(0, vocab - 1);
  std::uniform_int_distribution<size_t> pick(0, interesting.size() - 1);
  std::uniform_int_distribution<int> length(1, 40);
  std::uniform_int_distribution<int> percent(0, 99);
  for (int round = 0; round < 400; ++round) {
    std::vector<int32_t> ids(static_cast<size_t>(length(rng)));
    for (int32_t& id : ids) {
      const int p = percent(rng);
      id = p < 45 ? any_id(rng) : p < 95 ? interesting[pick(rng)] : (p % 2 ? -1 : vocab + 3);
    }
    const std::string context = GetParam() + " seed " + std::to_string(seed);
    ExpectStreamsLikeDecode(tok, ids, false, context);
    ExpectStreamsLikeDecode(tok, ids, true, context);
    if (HasFatalFailure()) return;
  }
}

TEST_P(IncrementalDecoding, EncodedTextsStreamBack) {
  const Tokenizer tok = LoadFixtureTokenizer(GetParam());
  std::ifstream in(std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + GetParam() + "/cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line) && n < 400) {
    if (line.empty()) continue;
    ++n;
    const auto ids = json::parse(line).at("ids").get<std::vector<int32_t>>();
    ExpectStreamsLikeDecode(tok, ids, false, GetParam());
    ExpectStreamsLikeDecode(tok, ids, true, GetParam());
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(n, 400);
}

INSTANTIATE_TEST_SUITE_P(Kinds, IncrementalDecoding,
                         ::testing::Values("gpt2", "llama3", "qwen2", "llama2_spm", "mistral_spm"));

TEST(IncrementalDecoding, HoldsBackUntilAByteFallbackRunEnds) {
  const Tokenizer tok = LoadFixtureTokenizer("llama2_spm");
  const auto a = tok.TokenToId("<0x41>");      // 'A'
  const auto e5 = tok.TokenToId("<0xE5>");
  const auto a5 = tok.TokenToId("<0xA5>");
  const auto bd = tok.TokenToId("<0xBD>");
  ASSERT_TRUE(a && e5 && a5 && bd);
  IncrementalDecoder decoder(tok);
  // "A" alone would be valid, but the run is not over: an invalid byte
  // could still turn the whole run into U+FFFDs.
  EXPECT_EQ(decoder.Push(*a), "");
  EXPECT_EQ(decoder.Push(*e5), "");
  EXPECT_EQ(decoder.Push(*a5), "");
  EXPECT_EQ(decoder.Push(*bd), "");
  EXPECT_EQ(decoder.Flush(), "A\u597d");  // the leading space rule does not apply to bytes
  IncrementalDecoder broken(tok);
  EXPECT_EQ(broken.Push(*a), "");
  EXPECT_EQ(broken.Push(*e5), "");
  EXPECT_EQ(broken.Flush(), "\uFFFD\uFFFD");  // as Decode: one U+FFFD per byte of an invalid run
}

TEST(IncrementalDecoding, NeverSplitsAByteLevelCharacter) {
  const Tokenizer tok = LoadFixtureTokenizer("gpt2");
  auto ids = tok.Encode("\u597d\u597d \U0001F600", false);
  ASSERT_TRUE(ids.ok());
  IncrementalDecoder decoder(tok);
  std::string all;
  for (const int32_t id : *ids) {
    const std::string chunk = decoder.Push(id);
    EXPECT_TRUE(utf8::IsValid(chunk));
    all += chunk;
  }
  all += decoder.Flush();
  EXPECT_EQ(all, "\u597d\u597d \U0001F600");
}

}  // namespace
}  // namespace lserve
