// BpeModel: the "BPE" model of tokenizer.json, with the semantics of
// tokenizers/src/models/bpe (merge ranks, unk/fuse_unk, byte_fallback,
// ignore_merges, continuing_subword_prefix / end_of_word_suffix).
//
// A word is merged with a min-heap of candidate pairs (rank, position) over
// a linked list of symbols: O(n log n) in the word length, so a
// 10^6-character word costs about as much as 10^6 short ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace lserve {

// unordered_map<std::string, V> that can be queried with a string_view.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringViewHash, std::equal_to<>>;

// Token ids stay below this (a hostile vocabulary cannot make the id tables
// huge). Real vocabularies are below 2^18.
inline constexpr int64_t kMaxTokenId = int64_t{1} << 24;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // From the "model" object of tokenizer.json (type BPE; merges as "a b"
  // strings or [a, b] pairs). Merges naming tokens outside the vocabulary,
  // duplicate ids, ids >= kMaxTokenId and dropout > 0 are errors.
  static Result<BpeModel> FromJson(const nlohmann::json& model);
  // From a vocabulary (token -> id) and merges in rank order.
  static Result<BpeModel> Build(StringMap<int32_t> vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges,
                                BpeOptions options);

  // Appends the ids of one pre-tokenized word.
  Status Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr for ids that no vocabulary entry has.
  const std::string* IdToToken(int32_t id) const;
  // Number of vocabulary entries (HF get_vocab_size(with_added_tokens=False)).
  size_t size() const { return vocab_.size(); }
  // One past the largest id.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  const BpeOptions& options() const { return options_; }
  const StringMap<int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void MergeWord(std::vector<int32_t>* symbol_ids, std::vector<uint32_t>* symbol_lens) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int32_t> byte_ids_;  // id of "<0xXX>" per byte, -1 when absent
  BpeOptions options_;
};

}  // namespace lserve
