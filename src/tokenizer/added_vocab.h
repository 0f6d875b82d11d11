// AddedVocabulary: the added_tokens of tokenizer.json (special and not),
// matched in the text before anything else, with the semantics of
// tokenizers/src/tokenizer/added_vocabulary.rs:
//   1. tokens with normalized=false are found in the raw text;
//   2. each remaining piece is normalized, then tokens with normalized=true
//      are found in it (by their normalized spelling).
// Matching is leftmost-longest and non-overlapping; single_word, lstrip and
// rstrip then adjust or discard each match exactly as the crate does.
// Special tokens match even with add_special_tokens=false (that flag only
// concerns the post-processor), unless encode_special_tokens is set
// (transformers' split_special_tokens).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace lserve {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;

  bool operator==(const AddedToken&) const = default;
};

class AddedVocabulary {
 public:
  AddedVocabulary();
  ~AddedVocabulary();
  AddedVocabulary(AddedVocabulary&&) noexcept;
  AddedVocabulary& operator=(AddedVocabulary&&) noexcept;

  // Adds `tokens` in order, as AddedVocabulary::add_tokens does: a token
  // whose content the vocabulary (added or model) already has takes that
  // id, any other the next free id after the model's. Returns the ids.
  Result<std::vector<int32_t>> Add(const std::vector<AddedToken>& tokens, const BpeModel& model,
                                   const Normalizer* normalizer);

  // Splits `text` into pieces; the pieces of added tokens carry their ids,
  // the others are normalized (by `normalizer`, if any).
  Status Split(std::string_view text, const Normalizer* normalizer, std::vector<Piece>* out) const;

  std::optional<int32_t> TokenToId(std::string_view content) const;
  const AddedToken* Find(int32_t id) const;
  // The string decoding uses for `id`: the normalized spelling of a
  // normalized token when the normalizer changes it, else the content.
  const std::string* DecodeString(int32_t id) const;
  bool IsSpecialContent(std::string_view content) const;
  // One past the largest added id (0 when empty).
  int32_t id_limit() const;
  size_t size() const { return content_to_id_.size(); }
  // Ids in increasing order with their tokens.
  const std::map<int32_t, AddedToken>& tokens() const { return id_to_token_; }

  void set_encode_special_tokens(bool v) { encode_special_tokens_ = v; }

 private:
  class Trie;
  struct Match {
    size_t start;
    size_t end;
    int32_t id;
  };
  Status RebuildTries();
  // The crate's find_matches: spans covering `text`, with an id for the
  // spans that are added tokens.
  std::vector<Match> FindMatches(std::string_view text, const Trie* trie) const;

  StringMap<int32_t> content_to_id_;
  std::map<int32_t, AddedToken> id_to_token_;
  std::unordered_map<int32_t, std::string> normalized_spelling_;
  StringMap<bool> special_contents_;
  std::unique_ptr<Trie> raw_trie_;         // tokens with normalized = false
  std::unique_ptr<Trie> normalized_trie_;  // tokens with normalized = true
  bool encode_special_tokens_ = false;
};

}  // namespace lserve
