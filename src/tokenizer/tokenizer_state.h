// The immutable state behind a Tokenizer, and how it is assembled from a
// tokenizer.json document plus what transformers adds on top (internal to
// src/tokenizer).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

// What transformers does on top of a tokenizer.json (TokenizersBackend
// __init__ and the tokenizer classes): the document it builds the backend
// from, the tokens it adds afterwards, and the post-processor it installs.
struct TransformersLoadPlan {
  nlohmann::json tokenizer;              // a tokenizer.json document
  // A model built directly (GGUF); when set, the document needs no "model".
  std::optional<BpeModel> model;
  std::vector<AddedToken> extra_tokens;  // added after loading, in order
  // update_post_processor(): [bos] $A [eos] replaces the file's processor.
  bool rebuild_post_processor = false;
  bool add_bos = false;
  bool add_eos = false;
  SpecialTokenStrings specials;
  bool split_special_tokens = false;
  std::string loaded_as = "TokenizersBackend";
};

struct TokenizerState {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  DecoderTraits decoder_traits;

  SpecialTokenStrings specials;
  std::optional<int32_t> bos_id, eos_id, pad_id, unk_id;
  bool adds_bos = false;
  bool adds_eos = false;
  int32_t id_limit = 0;
  std::string loaded_as;

  // The string decoding uses for `id`, or nullptr when no token has it.
  const std::string* DecodeString(int32_t id) const;
  // Whether Decode drops `id` (unknown id, or a special one when skipping).
  bool Dropped(int32_t id, bool skip_special) const;
};

// The tokenizer classes of transformers whose __init__ builds the
// normalizer, pre-tokenizer and decoder in code (hf_loading.cc).
enum class TokenizerClass { kBackend, kLlama, kGpt2, kQwen2 };

// Sets "normalizer", "pre_tokenizer" and "decoder" of the tokenizer.json
// document `doc` as the class's __init__ builds them.
void SetClassComponents(TokenizerClass cls, bool add_prefix_space, bool legacy, nlohmann::json* doc);

// Split patterns transformers' classes and GGUF loader install.
extern const std::string_view kLlama3SplitPattern;
extern const std::string_view kQwen2SplitPattern;
// Sequence[Split(pattern, Isolated), ByteLevel(use_regex=false)].
nlohmann::json SplitThenByteLevel(std::string_view pattern, bool add_prefix_space);

// An AddedToken object as tokenizer.json and tokenizer_config.json spell it:
// "content" (required), "single_word", "lstrip", "rstrip" (default false),
// "special" (default `default_special`), "normalized" (default !special).
Result<AddedToken> ParseAddedTokenObject(const nlohmann::json& obj, bool default_special, std::string_view where);

// Builds the state from a plan (the document must be a tokenizer.json).
Result<std::shared_ptr<const TokenizerState>> BuildTokenizerState(TransformersLoadPlan plan);

// transformers' AutoTokenizer rules for tokenizer.json + tokenizer_config.json
// (hf_loading.cc).
Result<TransformersLoadPlan> PlanHfLoad(nlohmann::json tokenizer, const nlohmann::json& config,
                                        std::string_view model_type);

}  // namespace lserve
