// BpeModel: the "BPE" model of tokenizer.json, with the semantics of
// tokenizers/src/models/bpe (merge ranks, unk/fuse_unk, byte_fallback,
// ignore_merges, continuing_subword_prefix / end_of_word_suffix).
//
// A word is merged with a min-heap of candidate pairs (rank, position) over
// a linked list of symbols: O(n log n) in the word length, so a
// 10^6-character word costs about as much as 10^6 short ones.
#pragma once

#include <cstdint>
#include <memory>
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

// Merge ranks keyed by the (left id, right id) pair: an open-addressing
// table (the merge lookup is the innermost step of BPE).
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  // Later inserts of the same pair replace earlier ones.
  void Insert(int32_t left, int32_t right, Merge merge);
  const Merge* Find(int32_t left, int32_t right) const;
  bool empty() const { return size_ == 0; }

 private:
  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t Mix(uint64_t x);
  void Grow();
  struct Slot {
    uint64_t key = ~uint64_t{0};  // empty (no pair of two ids of -1 exists)
    Merge merge{};
  };
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

class BpeModel {
 public:
  BpeModel();
  ~BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;

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
  class WordCache;
  Status TokenizeUncached(std::string_view word, std::vector<int32_t>* ids) const;
  void MergeWord(std::vector<int32_t>* symbol_ids, std::vector<uint32_t>* symbol_lens) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  MergeTable merges_;
  // Results for short words (as the crate caches them); results are
  // deterministic, so the cache only saves time.
  std::unique_ptr<WordCache> cache_;
  std::vector<int32_t> byte_ids_;  // id of "<0xXX>" per byte, -1 when absent
  BpeOptions options_;
};

}  // namespace lserve
