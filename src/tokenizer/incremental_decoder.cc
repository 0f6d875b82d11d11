// IncrementalDecoder (declared in tokenizer.h).
//
// The window ids_ holds the ids pushed since the previous emission's window
// start. Each Push decodes the window and emits what lies beyond
// prefix_text_ (the decode of the ids already emitted in the window), then
// slides the window start to the old read offset. Decoding a suffix of the
// stream differs from decoding the whole stream only at its first token
// (Metaspace and Strip drop a leading space there); both decodes of the
// difference start at the same token, so the effect cancels and every chunk
// is exactly the next piece of Decode(all ids).
//
// Output is held back while it could still change:
//   - a trailing run of ByteFallback tokens: the crate turns the whole run
//     into text or into one U+FFFD per byte only when the run ends;
//   - a ByteLevel byte stream ending in an incomplete UTF-8 sequence.
// Ids that Decode drops (unknown, or skipped special) are ignored outright.
#include <algorithm>

#include "core/utf8.h"
#include "tokenizer/decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_state.h"

namespace lserve {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : state_(tokenizer.state_), skip_special_(skip_special_tokens) {}

std::string IncrementalDecoder::DecodeWindow(size_t begin, size_t end) const {
  std::vector<std::string> tokens;
  tokens.reserve(end - begin);
  for (size_t k = begin; k < end; ++k) tokens.push_back(*state_->DecodeString(ids_[k]));
  return RunDecoder(state_->decoder.get(), std::move(tokens));
}

bool IncrementalDecoder::MustWait() const {
  if (ids_.empty()) return true;
  const DecoderTraits& traits = state_->decoder_traits;
  if (traits.byte_fallback && ByteFallbackValue(*state_->DecodeString(ids_.back())) >= 0) return true;
  if (traits.byte_level) {
    // The last few bytes decide; gather at least 4 (a lead byte and its
    // continuation bytes) from the tail of the window.
    std::vector<size_t> tail;
    size_t bytes = 0;
    for (size_t k = ids_.size(); k-- > 0 && bytes < 4;) {
      tail.push_back(k);
      std::string b;
      AppendByteLevelBytes(*state_->DecodeString(ids_[k]), &b);
      bytes += b.size();
    }
    std::string raw;
    for (auto it = tail.rbegin(); it != tail.rend(); ++it) {
      AppendByteLevelBytes(*state_->DecodeString(ids_[*it]), &raw);
    }
    if (utf8::CompletePrefixLength(raw) != raw.size()) return true;
  }
  return false;
}

std::string IncrementalDecoder::Push(int32_t id) {
  if (state_->Dropped(id, skip_special_)) return "";
  ids_.push_back(id);
  if (MustWait()) return "";
  std::string full = DecodeWindow(0, ids_.size());
  if (full.size() <= prefix_text_.size() || full.compare(0, prefix_text_.size(), prefix_text_) != 0) {
    return "";
  }
  std::string chunk = full.substr(prefix_text_.size());
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(read_offset_));
  read_offset_ = ids_.size();
  prefix_text_ = DecodeWindow(0, ids_.size());
  return chunk;
}

std::string IncrementalDecoder::Flush() {
  std::string full = DecodeWindow(0, ids_.size());
  std::string chunk;
  if (full.size() > prefix_text_.size() && full.compare(0, prefix_text_.size(), prefix_text_) == 0) {
    chunk = full.substr(prefix_text_.size());
  }
  // Everything is emitted; later pushes continue the same stream.
  read_offset_ = ids_.size();
  prefix_text_ = std::move(full);
  return chunk;
}

}  // namespace lserve
