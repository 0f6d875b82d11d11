#include "tokenizer/bpe_model.h"

#include <array>
#include <cstdio>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

constexpr std::string_view kWhere = "model BPE";

std::string ByteTokenName(int b) {
  char name[8];
  std::snprintf(name, sizeof(name), "<0x%02X>", b);
  return name;
}

Result<std::optional<std::string>> OptionalString(const json& model, std::string_view key) {
  return json_util::GetOptionalString(model, key, kWhere);
}

}  // namespace

uint64_t MergeTable::Mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void MergeTable::Grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
  size_ = 0;
  for (const Slot& slot : old) {
    if (slot.key != ~uint64_t{0}) {
      Insert(static_cast<int32_t>(slot.key >> 32), static_cast<int32_t>(slot.key & 0xFFFFFFFF), slot.merge);
    }
  }
}

void MergeTable::Insert(int32_t left, int32_t right, Merge merge) {
  if ((size_ + 1) * 2 > slots_.size()) Grow();
  const uint64_t key = Key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t i = Mix(key) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key) {
      slots_[i].merge = merge;
      return;
    }
    if (slots_[i].key == ~uint64_t{0}) {
      slots_[i] = Slot{key, merge};
      ++size_;
      return;
    }
  }
}

const MergeTable::Merge* MergeTable::Find(int32_t left, int32_t right) const {
  if (size_ == 0) return nullptr;
  const uint64_t key = Key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t i = Mix(key) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key) return &slots_[i].merge;
    if (slots_[i].key == ~uint64_t{0}) return nullptr;
  }
}

// Sharded word -> ids cache for words shorter than kMaxWordBytes; it stops
// growing at kCapacity entries (no eviction), like the crate's cache.
class BpeModel::WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kCapacity = 10000;

  bool Lookup(std::string_view word, std::vector<int32_t>* ids) {
    Shard& shard = ShardFor(word);
    std::shared_lock lock(shard.mutex);
    const auto it = shard.entries.find(word);
    if (it == shard.entries.end()) return false;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return true;
  }
  void Insert(std::string_view word, std::vector<int32_t> ids) {
    Shard& shard = ShardFor(word);
    std::unique_lock lock(shard.mutex);
    if (shard.entries.size() >= kCapacity / kShards) return;
    shard.entries.emplace(std::string(word), std::move(ids));
  }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::shared_mutex mutex;
    StringMap<std::vector<int32_t>> entries;
  };
  Shard& ShardFor(std::string_view word) { return shards_[StringViewHash()(word) % kShards]; }
  std::array<Shard, kShards> shards_;
};

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

Result<BpeModel> BpeModel::FromJson(const json& model) {
  if (!model.is_object()) return InvalidArgument("model must be an object");
  if (const json* type = json_util::Find(model, "type")) {
    if (!type->is_string() || type->get<std::string>() != "BPE") {
      return Unimplemented("model type " + type->dump() + " is not supported (only BPE)");
    }
  }
  BpeOptions options;
  if (const json* dropout = json_util::Find(model, "dropout")) {
    if (!dropout->is_number()) return json_util::TypeError(kWhere, "dropout", "a number or null");
    const double p = dropout->get<double>();
    if (!(p >= 0.0 && p <= 1.0)) return json_util::TypeError(kWhere, "dropout", "between 0 and 1");
    if (p != 0.0) return Unimplemented("BPE dropout (random merges) is not supported");
  }
  LSERVE_ASSIGN_OR_RETURN(options.unk_token, OptionalString(model, "unk_token"));
  LSERVE_ASSIGN_OR_RETURN(std::optional<std::string> prefix, OptionalString(model, "continuing_subword_prefix"));
  LSERVE_ASSIGN_OR_RETURN(std::optional<std::string> suffix, OptionalString(model, "end_of_word_suffix"));
  options.continuing_subword_prefix = prefix.value_or("");
  options.end_of_word_suffix = suffix.value_or("");
  LSERVE_ASSIGN_OR_RETURN(options.fuse_unk, json_util::GetBool(model, "fuse_unk", false, kWhere));
  LSERVE_ASSIGN_OR_RETURN(options.byte_fallback, json_util::GetBool(model, "byte_fallback", false, kWhere));
  LSERVE_ASSIGN_OR_RETURN(options.ignore_merges, json_util::GetBool(model, "ignore_merges", false, kWhere));

  const json* vocab_json = json_util::Find(model, "vocab");
  if (vocab_json == nullptr || !vocab_json->is_object()) {
    return json_util::TypeError(kWhere, "vocab", "an object of token -> id");
  }
  StringMap<int32_t> vocab;
  vocab.reserve(vocab_json->size());
  for (auto it = vocab_json->begin(); it != vocab_json->end(); ++it) {
    LSERVE_ASSIGN_OR_RETURN(int32_t id, json_util::AsTokenId(it.value(), kMaxTokenId,
                                                             "model BPE vocab entry \"" + it.key() + "\""));
    vocab[it.key()] = id;
  }

  const json* merges_json = json_util::Find(model, "merges");
  if (merges_json == nullptr || !merges_json->is_array()) {
    return json_util::TypeError(kWhere, "merges", "an array");
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_json->size());
  size_t rank = 0;
  for (const json& m : *merges_json) {
    ++rank;
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      // The legacy "a b" form: exactly two parts separated by one space.
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return InvalidArgument("model BPE: merge " + std::to_string(rank) + " (\"" + line +
                               "\") is not two tokens separated by a space");
      }
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return InvalidArgument("model BPE: merge " + std::to_string(rank) +
                             " must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  return Build(std::move(vocab), merges, std::move(options));
}

Result<BpeModel> BpeModel::Build(StringMap<int32_t> vocab,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 BpeOptions options) {
  BpeModel bpe;
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0 || id >= kMaxTokenId) {
      return InvalidArgument("model BPE: token id " + std::to_string(id) + " of \"" + token +
                             "\" is out of range");
    }
    max_id = std::max(max_id, id);
  }
  bpe.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  bpe.id_present_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : vocab) {
    if (bpe.id_present_[id]) {
      return InvalidArgument("model BPE: id " + std::to_string(id) + " is given to both \"" +
                             bpe.id_to_token_[id] + "\" and \"" + token + "\"");
    }
    bpe.id_present_[id] = true;
    bpe.id_to_token_[id] = token;
  }

  const size_t prefix_len = options.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const auto a_it = vocab.find(a);
    const auto b_it = vocab.find(b);
    if (a_it == vocab.end() || b_it == vocab.end()) {
      return InvalidArgument("model BPE: merge " + std::to_string(rank + 1) + " (\"" + a + " " + b +
                             "\") names a token that is not in the vocabulary");
    }
    if (b.size() < prefix_len) {
      return InvalidArgument("model BPE: merge " + std::to_string(rank + 1) +
                             " is shorter than continuing_subword_prefix");
    }
    const std::string merged = a + b.substr(prefix_len);
    const auto m_it = vocab.find(merged);
    if (m_it == vocab.end()) {
      return InvalidArgument("model BPE: merge " + std::to_string(rank + 1) + " makes \"" + merged +
                             "\", which is not in the vocabulary");
    }
    // A repeated pair keeps its last rank, as the tokenizers crate's map does.
    bpe.merges_.Insert(a_it->second, b_it->second, MergeTable::Merge{static_cast<uint32_t>(rank), m_it->second});
  }

  bpe.byte_ids_.assign(256, -1);
  if (options.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab.find(ByteTokenName(b));
      if (it != vocab.end()) bpe.byte_ids_[b] = it->second;
    }
  }
  bpe.vocab_ = std::move(vocab);
  bpe.options_ = std::move(options);
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

Status BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return Status::Ok();
  if (options_.ignore_merges) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids->push_back(it->second);
      return Status::Ok();
    }
  }
  if (word.size() >= WordCache::kMaxWordBytes) return TokenizeUncached(word, ids);
  if (cache_->Lookup(word, ids)) return Status::Ok();
  const size_t start = ids->size();
  LSERVE_RETURN_IF_ERROR(TokenizeUncached(word, ids));
  cache_->Insert(word, std::vector<int32_t>(ids->begin() + static_cast<std::ptrdiff_t>(start), ids->end()));
  return Status::Ok();
}

Status BpeModel::TokenizeUncached(std::string_view word, std::vector<int32_t>* ids) const {
  std::vector<int32_t> symbols;
  std::vector<uint32_t> lens;
  symbols.reserve(word.size());
  lens.reserve(word.size());

  // A pending unknown: its id and byte length (fuse_unk grows it).
  int32_t unk_id = -1;
  uint32_t unk_len = 0;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    const size_t start = i;
    i += unicode::SequenceLength(static_cast<uint8_t>(word[i]));
    const uint32_t byte_len = static_cast<uint32_t>(i - start);
    const bool is_first = start == 0;
    const bool is_last = i >= word.size();
    std::string_view piece = word.substr(start, i - start);
    if ((!is_first && !options_.continuing_subword_prefix.empty()) ||
        (is_last && !options_.end_of_word_suffix.empty())) {
      scratch.clear();
      if (!is_first) scratch += options_.continuing_subword_prefix;
      scratch.append(piece);
      if (is_last) scratch += options_.end_of_word_suffix;
      piece = scratch;
    }
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (unk_id >= 0) {
        symbols.push_back(unk_id);
        lens.push_back(unk_len);
        unk_id = -1;
      }
      symbols.push_back(it->second);
      lens.push_back(byte_len);
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes = true;
      for (const char c : piece) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        // The tokenizers crate adds the byte tokens without flushing a
        // pending unknown first; it comes out after them.
        for (const char c : piece) {
          symbols.push_back(byte_ids_[static_cast<uint8_t>(c)]);
          lens.push_back(1);
        }
        continue;
      }
    }
    if (options_.unk_token) {
      const auto unk = vocab_.find(*options_.unk_token);
      if (unk == vocab_.end()) {
        return InvalidArgument("the unknown token \"" + *options_.unk_token +
                               "\" is not in the vocabulary");
      }
      if (unk_id >= 0 && options_.fuse_unk) {
        unk_len += byte_len;
      } else {
        if (unk_id >= 0) {
          symbols.push_back(unk_id);
          lens.push_back(unk_len);
        }
        unk_id = unk->second;
        unk_len = byte_len;
      }
    }
    // Without an unknown token the character is dropped, as in the crate.
  }
  if (unk_id >= 0) {
    symbols.push_back(unk_id);
    lens.push_back(unk_len);
  }
  MergeWord(&symbols, &lens);
  for (size_t k = 0; k < symbols.size(); ++k) {
    if (lens[k] != 0) ids->push_back(symbols[k]);
  }
  return Status::Ok();
}

// The tokenizers crate's Word::merge_all: repeatedly merge the candidate
// pair of lowest (rank, position); a popped candidate is stale (skipped)
// when its left symbol was merged away, has no right neighbour, or the pair
// there no longer merges into the same token.
void BpeModel::MergeWord(std::vector<int32_t>* symbol_ids, std::vector<uint32_t>* symbol_lens) const {
  std::vector<int32_t>& c = *symbol_ids;
  std::vector<uint32_t>& len = *symbol_lens;
  const int64_t n = static_cast<int64_t>(c.size());
  if (n < 2 || merges_.empty()) return;
  std::vector<int64_t> prev(n), next(n);
  for (int64_t k = 0; k < n; ++k) {
    prev[k] = k - 1;
    next[k] = k + 1 < n ? k + 1 : -1;
  }
  struct Candidate {
    uint32_t rank;
    int64_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  for (int64_t k = 0; k + 1 < n; ++k) {
    if (const MergeTable::Merge* m = merges_.Find(c[k], c[k + 1])) queue.push({m->rank, k, m->new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int64_t pos = top.pos;
    if (len[pos] == 0 || next[pos] == -1) continue;
    const int64_t right = next[pos];
    const MergeTable::Merge* current = merges_.Find(c[pos], c[right]);
    if (current == nullptr || current->new_id != top.new_id) continue;
    c[pos] = top.new_id;
    len[pos] += len[right];
    next[pos] = next[right];
    len[right] = 0;
    if (next[right] >= 0) prev[next[right]] = pos;
    if (prev[pos] >= 0) {
      const int64_t p = prev[pos];
      if (const MergeTable::Merge* m = merges_.Find(c[p], c[pos])) queue.push({m->rank, p, m->new_id});
    }
    if (next[pos] >= 0) {
      if (const MergeTable::Merge* m = merges_.Find(c[pos], c[next[pos]])) queue.push({m->rank, pos, m->new_id});
    }
  }
}

}  // namespace lserve
