// Component tests: normalizers, pre-tokenizers, decoders, the BPE model and
// added tokens, each against outputs recorded from the Hugging Face
// `tokenizers` library (0.23.3) for the same JSON specification.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

struct PreTokenizerCase {
  const char* spec;
  std::string text;
  std::vector<std::string> pieces;
};

const PreTokenizerCase kPreTokenizerCases[] = {
{R"js({"type": "Split", "pattern": {"Regex": "x*"}, "behavior": "Isolated", "invert": false})js", "axxb", {"a", "xx", "b"}},
    {R"js({"type": "Split", "pattern": {"Regex": "-"}, "behavior": "Removed", "invert": false})js", "a-b--c-", {"a", "b", "c"}},
    {R"js({"type": "Split", "pattern": {"Regex": "-"}, "behavior": "MergedWithPrevious", "invert": false})js", "a-b--c-", {"a-", "b-", "-", "c-"}},
    {R"js({"type": "Split", "pattern": {"Regex": "-"}, "behavior": "MergedWithNext", "invert": false})js", "-a-b--c", {"-a", "-b", "-", "-c"}},
    {R"js({"type": "Split", "pattern": {"Regex": "-"}, "behavior": "Contiguous", "invert": false})js", "a-b--c-", {"a", "-", "b", "--", "c", "-"}},
    {R"js({"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Removed", "invert": true})js", "héllo, wörld!", {"héllo", "wörld"}},
    {R"js({"type": "Split", "pattern": {"String": "ab"}, "behavior": "Isolated", "invert": false})js", "xabababy", {"x", "ab", "ab", "ab", "y"}},
    {R"js({"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false})js", "a　b᠎cd", {"a", "　", "b᠎c", "", "d"}},
    {R"js({"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false})js", "IT'S 12345 ſ's'ſ", {"IT", "'S", " ", "123", "45", " ſ", "'s", "'ſ"}},
    {R"js({"type": "Split", "pattern": {"Regex": "^a|b$"}, "behavior": "Isolated", "invert": false})js", "ab\nab\nab", {"a", "b", "\n", "a", "b", "\n", "a", "b"}},
    {R"js({"type": "Digits", "individual_digits": true})js", "a12b٣4", {"a", "1", "2", "b", "٣", "4"}},
    {R"js({"type": "Digits", "individual_digits": false})js", "a12b٣4", {"a", "12", "b", "٣4"}},
    {R"js({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})js", "Hello  world", {"▁Hello", "▁", "▁world"}},
    {R"js({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true})js", " Hello world", {"▁Hello", "▁world"}},
    {R"js({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})js", "Hello world", {"▁Hello▁world"}},
    {R"js({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})js", "Hello  world's 12é", {"ĠHello", "Ġ", "Ġworld", "'s", "Ġ12", "Ã©"}},
    {R"js({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})js", "a b\n", {"aĠbĊ"}},
    {R"js({"type": "Whitespace"})js", "Hey, you—there? ok_1", {"Hey", ",", "you", "—", "there", "?", "ok_1"}},
    {R"js({"type": "WhitespaceSplit"})js", "a b c\td", {"a", "b", "c", "d"}},
    {R"js({"type": "Punctuation", "behavior": "Isolated"})js", "a,b.!c¿", {"a", ",", "b", ".", "!", "c", "¿"}},
    {R"js({"type": "CharDelimiterSplit", "delimiter": "x"})js", "axbxxc", {"a", "b", "c"}},
    {R"js({"type": "BertPreTokenizer"})js", "Hi, there!x", {"Hi", ",", "there", "!", "x"}},
    {R"js({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}]})js", "ab 12 c", {"▁ab", "▁", "▁1", "▁2", "▁c"}},
};

TEST(PreTokenizer, MatchesTokenizersCrate) {
  for (const PreTokenizerCase& c : kPreTokenizerCases) {
    auto pre = ParsePreTokenizer(json::parse(c.spec));
    ASSERT_TRUE(pre.ok()) << c.spec << ": " << pre.status().ToString();
    std::vector<Piece> pieces = {Piece{c.text, -1, true}};
    ASSERT_TRUE((*pre)->PreTokenize(&pieces).ok()) << c.spec;
    std::vector<std::string> got;
    for (const Piece& p : pieces) got.push_back(p.text);
    EXPECT_EQ(got, c.pieces) << c.spec << " on " << json(c.text).dump();
  }
}

TEST(PreTokenizer, MetaspaceFirstPrependsOnlyAtTheOrigin) {
  auto pre = ParsePreTokenizer(json::parse(
      R"js({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true})js"));
  ASSERT_TRUE(pre.ok());
  std::vector<Piece> pieces = {Piece{"a b", -1, true}, Piece{"<s>", 7, false}, Piece{"c", -1, false}};
  ASSERT_TRUE((*pre)->PreTokenize(&pieces).ok());
  std::vector<std::string> got;
  for (const Piece& p : pieces) got.push_back(p.text);
  EXPECT_EQ(got, (std::vector<std::string>{"\u2581a", "\u2581b", "<s>", "c"}));
}

struct NormalizerCase {
  const char* spec;
  std::string text;
  std::string normalized;
};

const NormalizerCase kNormalizerCases[] = {
    {R"js({"type": "NFC"})js", "é 각 á̖ ᫁á", "é 각 á̖ ᫁á"},
    {R"js({"type": "NFD"})js", "é각", "é각"},
    {R"js({"type": "NFKC"})js", "ﬁ ① ｶ ²", "fi 1 カ 2"},
    {R"js({"type": "NFKD"})js", "ﬁé", "fié"},
    {R"js({"type": "Lowercase"})js", "İSTANBUL ΑΣ ÀÉ", "i̇stanbul ασ àé"},
    {R"js({"type": "Prepend", "prepend": "▁"})js", "hi", "▁hi"},
    {R"js({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})js", " a  b ", "▁a▁▁b▁"},
    {R"js({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "})js", "a \t\n b", "a b"},
    {R"js({"type": "Strip", "strip_left": true, "strip_right": false})js", " 　 a b  ", "a b  "},
    {R"js({"type": "Strip", "strip_left": true, "strip_right": true})js", " 　 a b  ", "a b"},
    {R"js({"type": "StripAccents"})js", "éà", "ea"},
    {R"js({"type": "Nmt"})js", "a\u0001b\tc​d", "ab c d"},
    {R"js({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})js", "Hello world", "▁Hello▁world"},
};

TEST(Normalizer, MatchesTokenizersCrate) {
  for (const NormalizerCase& c : kNormalizerCases) {
    auto n = ParseNormalizer(json::parse(c.spec));
    ASSERT_TRUE(n.ok()) << c.spec << ": " << n.status().ToString();
    std::string text = c.text;
    bool at_origin = true;
    ASSERT_TRUE((*n)->Normalize(&text, &at_origin).ok());
    EXPECT_EQ(text, c.normalized) << c.spec << " on " << json(c.text).dump();
  }
}

TEST(Unicode, NormalizationFormsFollowTheCratesUnicodeVersion) {
  using unicode::NormalizationForm;
  // Canonical reordering and composition, Hangul both ways.
  EXPECT_EQ(unicode::Normalize("a\u0301\u0316", NormalizationForm::kNFD), "a\u0316\u0301");
  EXPECT_EQ(unicode::Normalize("a\u0316\u0301", NormalizationForm::kNFC), "\u00e1\u0316");
  EXPECT_EQ(unicode::Normalize("\u1100\u1161\u11a8", NormalizationForm::kNFC), "\uac01");
  EXPECT_EQ(unicode::Normalize("\uac01", NormalizationForm::kNFD), "\u1100\u1161\u11a8");
  // A composition exclusion stays decomposed; a blocked mark does not join.
  EXPECT_EQ(unicode::Normalize("\u0958", NormalizationForm::kNFC), "\u0915\u093c");
  EXPECT_EQ(unicode::Normalize("e\u0301\u0301", NormalizationForm::kNFC), "\u00e9\u0301");
  // U+1AC1 (Unicode 14) has class 0 in the crate's older tables: no reordering.
  EXPECT_EQ(unicode::Normalize("a\u1ac1\u0316", NormalizationForm::kNFD), "a\u1ac1\u0316");
  // U+11938 (Unicode 13) has no decomposition there.
  EXPECT_EQ(unicode::Normalize("\U00011938", NormalizationForm::kNFD), "\U00011938");
  EXPECT_EQ(unicode::Normalize("\ufb01\u2460", NormalizationForm::kNFKC), "fi1");
  EXPECT_EQ(unicode::Lowercase("\u0130\u03a3A"), "i\u0307\u03c3a");
}

TEST(Unicode, CharacterClasses) {
  EXPECT_TRUE(unicode::IsWhitespace(0x3000));
  EXPECT_TRUE(unicode::IsWhitespace(0x85));
  EXPECT_FALSE(unicode::IsWhitespace(0x180E));
  EXPECT_FALSE(unicode::IsWhitespace(0x200B));
  EXPECT_TRUE(unicode::IsNumeric(0x0663));  // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(unicode::IsNumeric(0x00B2));
  EXPECT_FALSE(unicode::IsNumeric('x'));
  EXPECT_TRUE(unicode::IsWordChar(0x0301));
  EXPECT_TRUE(unicode::IsWordChar(0x24B6));
  EXPECT_FALSE(unicode::IsWordChar('-'));
  EXPECT_TRUE(unicode::IsPunctuation(0x00BF));
  EXPECT_TRUE(unicode::IsCombiningMark(0x0301));
}

TEST(Regex, TranslatesOnigurumaClasses) {
  auto t = TranslateOnigurumaPattern(R"(\s+|[^\s\p{L}]|\h|\u0041|(?m:.))");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->find("\\s"), std::string::npos);
  EXPECT_NE(t->find("\\x{3000}"), std::string::npos);
  EXPECT_NE(t->find("[0-9a-fA-F]"), std::string::npos);
  EXPECT_NE(t->find("\\x{0041}"), std::string::npos);
  EXPECT_NE(t->find("(?s:"), std::string::npos);
  EXPECT_EQ(TranslateOnigurumaPattern("[a-c&&b]").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(TranslateOnigurumaPattern("[abc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Regex::Compile("(unclosed").status().code(), StatusCode::kInvalidArgument);
}

TEST(Regex, EmptyMatchesFollowOniguruma) {
  auto re = Regex::Compile("x*");
  ASSERT_TRUE(re.ok());
  std::vector<MatchSpan> m;
  ASSERT_TRUE(re->FindAll("axxb", &m).ok());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].start, 0u);
  EXPECT_EQ(m[0].end, 0u);
  EXPECT_EQ(m[1].start, 1u);
  EXPECT_EQ(m[1].end, 3u);
  EXPECT_EQ(m[2].start, 4u);
  EXPECT_EQ(m[2].end, 4u);
}

struct DecoderCase {
  const char* spec;
  std::vector<std::string> tokens;
  std::string text;
};

const DecoderCase kDecoderCases[] = {
    {R"js({"type": "ByteFallback"})js", {"<0x41>", "<0xE5>", "<0xA5>", "<0xBD>", "x", "<0x41>", "<0xE5>", "y", "<0xFF>", "<0x+A>", "<0xZZ>"}, "A好x��y��<0xZZ>"},
    {R"js({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})js", {"Hello", "Ġw", "Ã", "©", "Ã", "x", "é"}, "Hello wé�x�"},
    {R"js({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})js", {"▁▁Hi", "▁there", "▁"}, "Hi there "},
    {R"js({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true})js", {"▁Hi", "▁there"}, " Hi there"},
    {R"js({"type": "Strip", "content": " ", "start": 2, "stop": 0})js", {"   a", " b", "c"}, " abc"},
    {R"js({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})js", {"▁Hi", "<0xC3>", "<0xA9>", "▁", "<0xE5>"}, "Hié �"},
    {R"js({"type": "BPEDecoder", "suffix": "</w>"})js", {"hel", "lo</w>", "there</w>"}, "hello there"},
};

TEST(Decoder, MatchesTokenizersCrate) {
  for (const DecoderCase& c : kDecoderCases) {
    DecoderTraits traits;
    auto d = ParseDecoder(json::parse(c.spec), &traits);
    ASSERT_TRUE(d.ok()) << c.spec << ": " << d.status().ToString();
    const std::string text = RunDecoder(d->get(), c.tokens);
    EXPECT_EQ(text, c.text) << c.spec;
    EXPECT_TRUE(utf8::IsValid(text));
  }
}

TEST(Decoder, ByteFallbackValueParsesLikeRust) {
  EXPECT_EQ(ByteFallbackValue("<0x0A>"), 0x0A);
  EXPECT_EQ(ByteFallbackValue("<0xfe>"), 0xFE);
  EXPECT_EQ(ByteFallbackValue("<0x+A>"), 0x0A);
  EXPECT_EQ(ByteFallbackValue("<0x-1>"), -1);
  EXPECT_EQ(ByteFallbackValue("<0xZZ>"), -1);
  EXPECT_EQ(ByteFallbackValue("<0x1>"), -1);
  EXPECT_EQ(ByteFallbackValue("<0x123>"), -1);
}

// Small tokenizers (tokenizer.json documents) and the ids the crate gives.
struct PipelineCase {
  const char* name;
  const char* tokenizer_json;
  std::vector<std::pair<std::string, std::vector<int32_t>>> encodings;
};

const PipelineCase kPipelineCases[] = {
  {"strip", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "<L>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": false}, {"id": 41, "content": "<R>", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": true}, {"id": 42, "content": "<B>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": false}], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"a <L> b", {0, 40, 26, 1}}, {"a  <R>  b", {0, 26, 26, 41, 1}}, {"x <B>  <B> y", {23, 42, 42, 24}}, {"<L>", {40}}, {"  <L>", {40}}, {"<R>  ", {41}}, {"a　<L>", {0, 40}}}},
  {"single_word", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "ab", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false}, {"id": 41, "content": "abc!", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"ab", {35}}, {"xab", {23, 35}}, {"ab c", {35, 26, 2}}, {"abab", {35, 35}}, {"ab!", {35, 31}}, {"éab", {35}}, {"_ab", {35}}, {"abc!", {40}}, {"ab́", {35}}}},
  {"longest", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "<a>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}, {"id": 41, "content": "<a><b>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}, {"id": 42, "content": "a><", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"<a><b>", {41}}, {"<a><c>", {40, 28, 2, 29}}, {"x<a><b><a>", {23, 41, 40}}, {"<a<a>", {28, 0, 40}}}},
  {"normalized", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "ab", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}, {"id": 41, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}], "normalizer": {"type": "Lowercase"}, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"AB", {35}}, {"Ab <x> <X>", {35, 26, 40, 26, 28, 23, 29}}, {"cAbc", {2, 35, 2}}}},
  {"prepend_split", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}], "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"ab<s>ab", {27, 35, 40, 27, 35}}, {"<s>ab", {40, 27, 35}}, {"ab <s> ab", {27, 35, 27, 40, 27, 27, 35}}, {"", {}}}},
  {"metaspace_first", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}], "normalizer": null, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"ab<s>ab", {27, 35, 40, 35}}, {"<s>ab", {40, 35}}, {" ab", {27, 35}}, {"ab", {27, 35}}}},
  {"metaspace_always", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 40, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}], "normalizer": null, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"ab<s>ab", {27, 35, 40, 27, 35}}, {"<s>ab", {40, 27, 35}}, {" ab", {27, 35}}, {"ab ab", {27, 35, 27, 35}}}},
  {"unk_fuse", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": "<", "fuse_unk": true, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"a€€b€", {0, 28, 1, 28}}, {"ABc", {28, 2}}}},
  {"unk_nofuse", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": "<", "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"a€€b€", {0, 28, 28, 1, 28}}, {"ABc", {28, 28, 2}}}},
  {"no_unk", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]]}})js",
   {{"a€€b€", {35}}, {"ABc", {2}}}},
  {"ignore_merges", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]], "ignore_merges": true}})js",
   {{"abc", {36}}, {"abcabc", {36, 36}}, {"bc", {37}}}},
  {"prefix", R"js({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, " ": 26, "▁": 27, "<": 28, ">": 29, "|": 30, "!": 31, ".": 32, ",": 33, "'": 34, "ab": 35, "abc": 36, "bc": 37, "▁a": 38, "▁ab": 39}, "merges": [["a", "b"], ["ab", "c"], ["b", "c"], ["▁", "a"], ["▁a", "b"]], "continuing_subword_prefix": "|"}})js",
   {{"abc", {0}}, {"ab", {0}}}},
};

TEST(Pipeline, AddedTokensAndBpeOptionsMatchTokenizersCrate) {
  for (const PipelineCase& c : kPipelineCases) {
    auto tok = Tokenizer::FromHfJson(c.tokenizer_json, "");
    ASSERT_TRUE(tok.ok()) << c.name << ": " << tok.status().ToString();
    for (const auto& [text, ids] : c.encodings) {
      auto got = tok->Encode(text, false);
      ASSERT_TRUE(got.ok()) << c.name;
      EXPECT_EQ(*got, ids) << c.name << " on " << json(text).dump();
    }
  }
}

}  // namespace
}  // namespace lserve
