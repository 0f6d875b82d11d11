#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <array>

#include "tokenizer/unicode.h"

namespace lserve {

// A byte trie of the token spellings. LongestAt walks it from one position:
// the cost is bounded by the longest token, so a scan is linear in the text
// for any fixed vocabulary.
class AddedVocabulary::Trie {
 public:
  Trie() { value_.push_back(-1); }

  // False when `pattern` is already present.
  bool Insert(std::string_view pattern, int32_t id) {
    uint32_t node = 0;
    for (const char c : pattern) {
      const uint64_t key = EdgeKey(node, c);
      const auto it = edges_.find(key);
      if (it != edges_.end()) {
        node = it->second;
      } else {
        const auto child = static_cast<uint32_t>(value_.size());
        value_.push_back(-1);
        edges_.emplace(key, child);
        node = child;
      }
    }
    if (value_[node] >= 0) return false;
    value_[node] = id;
    first_byte_[static_cast<uint8_t>(pattern[0])] = true;
    return true;
  }

  // The longest pattern that starts at text[pos]: {length, id}, or {0, -1}.
  std::pair<size_t, int32_t> LongestAt(std::string_view text, size_t pos) const {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) return {0, -1};
    std::pair<size_t, int32_t> best{0, -1};
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto it = edges_.find(EdgeKey(node, text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (value_[node] >= 0) best = {i + 1 - pos, value_[node]};
    }
    return best;
  }

 private:
  static uint64_t EdgeKey(uint32_t node, char c) {
    return (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
  }
  std::vector<int32_t> value_;  // per node: the id ending there, or -1
  std::unordered_map<uint64_t, uint32_t> edges_;
  std::array<bool, 256> first_byte_{};
};

namespace {

// Rust regex `\w$` on text[..pos]: the character before pos is a word char.
bool EndsWithWord(std::string_view text, size_t pos) {
  return pos > 0 && unicode::IsWordChar(unicode::LastCodePoint(text.substr(0, pos)));
}

// Rust regex `^\w` on text[pos..].
bool StartsWithWord(std::string_view text, size_t pos) {
  return pos < text.size() && unicode::IsWordChar(unicode::FirstCodePoint(text.substr(pos)));
}

// Start of the run of White_Space that ends at `pos` (`\s*$` on text[..pos]).
size_t WhitespaceRunBefore(std::string_view text, size_t pos) {
  while (pos > 0) {
    const std::string_view head = text.substr(0, pos);
    const char32_t cp = unicode::LastCodePoint(head);
    if (!unicode::IsWhitespace(cp)) break;
    size_t start = pos - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    pos = start;
  }
  return pos;
}

// End of the run of White_Space that starts at `pos` (`^\s*` on text[pos..]).
size_t WhitespaceRunAfter(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t next = pos;
    if (!unicode::IsWhitespace(unicode::NextCodePoint(text, &next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

AddedVocabulary::AddedVocabulary() = default;
AddedVocabulary::~AddedVocabulary() = default;
AddedVocabulary::AddedVocabulary(AddedVocabulary&&) noexcept = default;
AddedVocabulary& AddedVocabulary::operator=(AddedVocabulary&&) noexcept = default;

Result<std::vector<int32_t>> AddedVocabulary::Add(const std::vector<AddedToken>& tokens,
                                                  const BpeModel& model, const Normalizer* normalizer) {
  const auto model_size = static_cast<int64_t>(model.size());
  int64_t next_id = model_size;
  if (!id_to_token_.empty()) {
    const int64_t max = id_to_token_.rbegin()->first;
    next_id = (max >= model_size || model_size == 0) ? max + 1 : model_size;
  }
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) {
      ids.push_back(-1);
      continue;
    }
    if (const auto it = content_to_id_.find(token.content); it != content_to_id_.end()) {
      // content_to_id_ only names ids that id_to_token_ has.
      if (const auto same = id_to_token_.find(it->second); same != id_to_token_.end() && same->second == token) {
        ids.push_back(it->second);
        continue;
      }
    }
    int64_t id;
    if (const auto it = content_to_id_.find(token.content); it != content_to_id_.end()) {
      id = it->second;
    } else if (const auto model_id = model.TokenToId(token.content)) {
      id = *model_id;
    } else {
      id = next_id++;
    }
    if (id >= kMaxTokenId) return InvalidArgument("too many added tokens");
    if (token.normalized && normalizer != nullptr) {
      std::string spelling = token.content;
      bool at_origin = true;
      LSERVE_RETURN_IF_ERROR(normalizer->Normalize(&spelling, &at_origin));
      // Never erased, as in the crate: a later re-add keeps the old spelling.
      if (spelling != token.content) normalized_spelling_[static_cast<int32_t>(id)] = std::move(spelling);
    }
    content_to_id_[token.content] = static_cast<int32_t>(id);
    if (token.special) special_contents_[token.content] = true;
    id_to_token_[static_cast<int32_t>(id)] = token;
    ids.push_back(static_cast<int32_t>(id));
  }
  LSERVE_RETURN_IF_ERROR(RebuildTries());
  return ids;
}

Status AddedVocabulary::RebuildTries() {
  auto raw = std::make_unique<Trie>();
  auto normalized = std::make_unique<Trie>();
  bool any_raw = false, any_normalized = false;
  for (const auto& [id, token] : id_to_token_) {
    std::string_view pattern = token.content;
    if (token.normalized) {
      if (const auto it = normalized_spelling_.find(id); it != normalized_spelling_.end()) {
        pattern = it->second;
      }
    }
    if (pattern.empty()) continue;
    Trie& trie = token.normalized ? *normalized : *raw;
    if (!trie.Insert(pattern, id)) {
      return InvalidArgument("added tokens: two tokens match the same text \"" + std::string(pattern) + "\"");
    }
    (token.normalized ? any_normalized : any_raw) = true;
  }
  raw_trie_ = any_raw ? std::move(raw) : nullptr;
  normalized_trie_ = any_normalized ? std::move(normalized) : nullptr;
  return Status::Ok();
}

std::vector<AddedVocabulary::Match> AddedVocabulary::FindMatches(std::string_view text,
                                                                 const Trie* trie) const {
  std::vector<Match> splits;
  if (text.empty()) return splits;
  if (trie == nullptr) {
    splits.push_back({0, text.size(), -1});
    return splits;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto [length, id] = trie->LongestAt(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;  // the next match starts after this one, kept or not
    const auto found = id_to_token_.find(id);  // trie ids are id_to_token_ keys
    if (found == id_to_token_.end()) continue;
    const AddedToken& token = found->second;
    if (encode_special_tokens_ && special_contents_.count(token.content) != 0) continue;
    if (token.single_word) {
      const bool start_space = start == 0 || !EndsWithWord(text, start);
      const bool stop_space = stop == text.size() || !StartsWithWord(text, stop);
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(WhitespaceRunBefore(text, start), start_offset);
    if (token.rstrip) stop = WhitespaceRunAfter(text, stop);
    // An rstrip run can swallow the start of a later match; the crate then
    // slices backwards (and panics where the slice is inverted). Clamp.
    start = std::min(start, stop);
    if (start_offset < start) splits.push_back({start_offset, start, -1});
    splits.push_back({start, stop, id});
    start_offset = stop;
  }
  if (start_offset < text.size()) splits.push_back({start_offset, text.size(), -1});
  return splits;
}

Status AddedVocabulary::Split(std::string_view text, const Normalizer* normalizer,
                              std::vector<Piece>* out) const {
  for (const Match& raw : FindMatches(text, raw_trie_.get())) {
    if (raw.end <= raw.start) continue;
    if (raw.id >= 0) {
      out->push_back(Piece{std::string(text.substr(raw.start, raw.end - raw.start)), raw.id, false});
      continue;
    }
    std::string normalized(text.substr(raw.start, raw.end - raw.start));
    bool at_origin = raw.start == 0;
    if (normalizer != nullptr) LSERVE_RETURN_IF_ERROR(normalizer->Normalize(&normalized, &at_origin));
    for (const Match& m : FindMatches(normalized, normalized_trie_.get())) {
      if (m.end <= m.start) continue;
      out->push_back(Piece{normalized.substr(m.start, m.end - m.start), m.id, at_origin && m.start == 0});
    }
  }
  return Status::Ok();
}

std::optional<int32_t> AddedVocabulary::TokenToId(std::string_view content) const {
  const auto it = content_to_id_.find(content);
  if (it == content_to_id_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocabulary::Find(int32_t id) const {
  const auto it = id_to_token_.find(id);
  return it == id_to_token_.end() ? nullptr : &it->second;
}

const std::string* AddedVocabulary::DecodeString(int32_t id) const {
  if (const auto it = normalized_spelling_.find(id); it != normalized_spelling_.end()) return &it->second;
  const auto it = id_to_token_.find(id);
  return it == id_to_token_.end() ? nullptr : &it->second.content;
}

bool AddedVocabulary::IsSpecialContent(std::string_view content) const {
  return special_contents_.find(content) != special_contents_.end();
}

int32_t AddedVocabulary::id_limit() const {
  return id_to_token_.empty() ? 0 : id_to_token_.rbegin()->first + 1;
}

}  // namespace lserve
