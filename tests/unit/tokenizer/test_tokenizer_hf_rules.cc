// transformers' AutoTokenizer rules on top of tokenizer.json: which class it
// picks (tokenizer_class, config.json's model_type, byte-level files) and
// what that class rebuilds. Expected ids were recorded with transformers
// 5.24 on the fixture tokenizers with the listed tokenizer_config.json
// changes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

struct RuleCase {
  const char* kind;             // fixture whose tokenizer.json is used
  const char* config_changes;   // merged into its tokenizer_config.json
  const char* model_type;       // config.json's model_type ("" = no config.json)
  const char* loaded_as;        // the class transformers chose
  int32_t num_tokens;           // len(tokenizer)
  std::vector<std::pair<std::string, std::vector<int32_t>>> encodings;  // add_special_tokens=True
};

const RuleCase kRuleCases[] = {
    {"llama2_spm", R"js({"tokenizer_class": "LlamaTokenizer", "legacy": true})js", "", "LlamaTokenizer", 1161, {{"Hello world", {1, 491, 1141, 1069}}, {" two  spaces", {1, 904, 383, 421, 335, 774, 338}}, {"a<s>b </s> c", {1, 422, 1, 430, 383, 2, 444}}, {"x<|endoftext|>y", {1, 903, 289, 346, 427, 323, 334, 554, 324, 715, 346, 291, 344}}, {"<|im_start|>hi", {1, 667, 346, 625, 319, 443, 543, 346, 291, 327, 328}}, {"é 12 é́", {1, 383, 352, 383, 278, 279, 383, 352, 207, 132}}}},
    {"llama2_spm", R"js({"tokenizer_class": "LlamaTokenizerFast", "legacy": false})js", "", "LlamaTokenizer", 1161, {{"Hello world", {1, 491, 1141, 1069}}, {" two  spaces", {1, 904, 383, 421, 335, 774, 338}}, {"a<s>b </s> c", {1, 422, 1, 321, 383, 2, 444}}, {"x<|endoftext|>y", {1, 903, 289, 346, 427, 323, 334, 554, 324, 715, 346, 291, 344}}, {"<|im_start|>hi", {1, 667, 346, 625, 319, 443, 543, 346, 291, 327, 328}}, {"é 12 é́", {1, 383, 352, 383, 278, 279, 383, 352, 207, 132}}}},
    {"llama2_spm", R"js({"tokenizer_class": "LlamaTokenizer", "add_prefix_space": false})js", "", "LlamaTokenizer", 1161, {{"Hello world", {1, 301, 1141, 1069}}, {" two  spaces", {1, 904, 383, 421, 335, 774, 338}}, {"a<s>b </s> c", {1, 320, 1, 321, 383, 2, 444}}, {"x<|endoftext|>y", {1, 343, 289, 346, 427, 323, 334, 554, 324, 715, 346, 291, 344}}, {"<|im_start|>hi", {1, 289, 346, 625, 319, 443, 543, 346, 291, 327, 328}}, {"é 12 é́", {1, 352, 383, 278, 279, 383, 352, 207, 132}}}},
    {"mistral_spm", R"js({"tokenizer_class": "LlamaTokenizer", "legacy": true})js", "mistral", "TokenizersBackend", 1272, {{"Hello world", {1, 544, 1201, 919}}, {" two  spaces", {1, 804, 409, 471, 348, 840, 351}}, {"a<s>b </s> c", {1, 472, 1, 334, 409, 2, 494}}, {"x<|endoftext|>y", {1, 842, 301, 360, 477, 336, 347, 564, 337, 741, 360, 303, 357}}, {"<|im_start|>hi", {1, 726, 360, 566, 332, 492, 592, 360, 303, 340, 341}}, {"é 12 é́", {1, 409, 366, 409, 290, 291, 409, 366, 217, 142}}}},
    {"gpt2", R"js({"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": true})js", "", "GPT2Tokenizer", 1003, {{"Hello world", {374, 376, 78, 742}}, {" two  spaces", {766, 220, 258, 79, 610, 82}}, {"a<s>b </s> c", {259, 27, 82, 29, 65, 815, 14, 82, 29, 281}}, {"x<|endoftext|>y", {987, 1000, 329}}, {"<|im_start|>hi", {815, 91, 341, 62, 276, 382, 91, 29, 71, 72}}, {"é 12 é́", {220, 972, 220, 464, 220, 972, 136, 223}}}},
    {"qwen2", R"js({"tokenizer_class": "PreTrainedTokenizerFast"})js", "qwen2", "Qwen2Tokenizer", 1108, {{"Hello world", {1004, 782}}, {" two  spaces", {916, 220, 258, 79, 531, 82}}, {"a<s>b </s> c", {64, 27, 82, 29, 65, 910, 14, 82, 29, 282}}, {"x<|endoftext|>y", {87, 1100, 88}}, {"<|im_start|>hi", {1101, 71, 72}}, {"é 12 é́", {1006, 220, 16, 17, 949, 102, 136, 223}}}},
    {"llama3", R"js({"tokenizer_class": "LlamaTokenizer", "add_bos_token": false})js", "", "TokenizersBackend", 1113, {{"Hello world", {1100, 1023, 928}}, {" two  spaces", {1100, 842, 220, 258, 79, 64, 323, 82}}, {"a<s>b </s> c", {1100, 64, 27, 82, 29, 65, 665, 14, 82, 29, 292}}, {"x<|endoftext|>y", {1100, 87, 27, 91, 264, 67, 78, 393, 68, 618, 91, 29, 88}}, {"<|im_start|>hi", {1100, 27, 91, 462, 62, 279, 378, 91, 29, 71, 72}}, {"é 12 é́", {1100, 972, 220, 482, 948, 102, 136, 223}}}},
    {"gpt2", R"js({"bos_token": "<|newbos|>", "split_special_tokens": true})js", "", "TokenizersBackend", 1004, {{"Hello world", {39, 376, 78, 742}}, {" two  spaces", {766, 220, 258, 79, 610, 82}}, {"a<s>b </s> c", {64, 27, 82, 29, 65, 815, 14, 82, 29, 281}}, {"x<|endoftext|>y", {87, 27, 91, 264, 67, 78, 69, 83, 68, 509, 91, 29, 88}}, {"<|im_start|>hi", {27, 91, 341, 62, 276, 382, 91, 29, 71, 72}}, {"é 12 é́", {972, 220, 464, 220, 972, 136, 223}}}},
};

TEST(TransformersRules, ClassChoiceAndRebuildMatchAutoTokenizer) {
  for (const RuleCase& c : kRuleCases) {
    const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + c.kind;
    auto tokenizer_json = ReadTextFile(dir + "/tokenizer.json");
    auto config_json = ReadTextFile(dir + "/tokenizer_config.json");
    ASSERT_TRUE(tokenizer_json.ok() && config_json.ok()) << "missing fixture " << dir;
    json config = json::parse(*config_json);
    config.update(json::parse(c.config_changes));
    auto tok = Tokenizer::FromHfJson(*tokenizer_json, config.dump(), c.model_type);
    ASSERT_TRUE(tok.ok()) << c.kind << " " << c.config_changes << ": " << tok.status().ToString();
    EXPECT_EQ(tok->loaded_as(), c.loaded_as) << c.kind << " " << c.config_changes;
    EXPECT_EQ(tok->num_tokens(), c.num_tokens) << c.kind << " " << c.config_changes;
    for (const auto& [text, ids] : c.encodings) {
      auto got = tok->Encode(text);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(*got, ids) << c.kind << " " << c.config_changes << " on " << json(text).dump();
    }
  }
}

TEST(TransformersRules, SpecialTokenStringsAndIds) {
  const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/llama3";
  auto tok = Tokenizer::FromHfJson(*ReadTextFile(dir + "/tokenizer.json"), *ReadTextFile(dir + "/tokenizer_config.json"));
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->special_tokens().bos_token, std::optional<std::string>("<|begin_of_text|>"));
  EXPECT_EQ(tok->special_tokens().eos_token, std::optional<std::string>("<|eot_id|>"));
  ASSERT_TRUE(tok->bos_id().has_value());
  EXPECT_EQ(tok->TokenToId("<|begin_of_text|>"), tok->bos_id());
  EXPECT_TRUE(tok->IsSpecial(*tok->bos_id()));
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_FALSE(tok->adds_eos());
  EXPECT_EQ(tok->IdToToken(*tok->eos_id()), std::optional<std::string>("<|eot_id|>"));
  EXPECT_EQ(tok->vocab_size(), tok->num_tokens());  // ids are contiguous here
}

}  // namespace
}  // namespace lserve
