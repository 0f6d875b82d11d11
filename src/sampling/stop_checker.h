// StopChecker: when a sequence finishes and which text may be emitted.
//
// Finishing, checked per generated token in this order:
//   1. the token is an EOS id (unless ignore_eos) or in stop_token_ids:
//      "stop"; the token's own text is not emitted (vLLM);
//   2. a stop string completes in the text: "stop"; the output ends right
//      before that occurrence and nothing after it is emitted;
//   3. the token is the max_tokens-th: "length".
//
// Stop strings are matched on the text stream, whatever its chunking. The
// output is cut at the first position where any stop string *completes*
// (the moment generation would halt); when several complete there, the
// longest one (the earliest start) is cut. Example: stops {"abcd", "bc"}
// over "abcd" give "a": "bc" completes before "abcd" can.
// Nothing that could still turn out to be part of a stop string is emitted:
// the longest suffix of the text that is a proper prefix of some stop string
// is held back until the next text decides it (or the stream ends and it is
// released). So the emitted chunks, concatenated, are exactly the final
// text, and no emitted byte is ever retracted.
//
// Each stop string runs a Knuth-Morris-Pratt automaton over the bytes, so a
// byte costs O(number of stop strings) amortised and the held text never
// exceeds the longest stop string. Stop strings are valid UTF-8 (Validate);
// a held suffix then starts with a lead byte, so held text and cuts fall on
// character boundaries of well-formed text.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sampling/sampling_params.h"

namespace lserve {

enum class FinishReason : uint8_t { kStop, kLength };

// The OpenAI finish_reason: "stop", "length".
std::string_view FinishReasonName(FinishReason reason);

struct StopUpdate {
  std::string text;  // to emit now (may be empty)
  std::optional<FinishReason> finish_reason;  // set: the sequence is over
  // What ended a "stop" (vLLM's stop_reason): the index in params.stop of the
  // stop string, or the stop_token_ids entry; neither for EOS.
  std::optional<size_t> stop_string;
  std::optional<int32_t> stop_token_id;

  bool finished() const { return finish_reason.has_value(); }
};

class StopChecker {
 public:
  // `params` must be valid (Validate). `eos_token_ids`: the model's EOS ids
  // (generation_config may list several); ignored under params.ignore_eos.
  StopChecker(const SamplingParams& params, std::span<const int32_t> eos_token_ids);

  // One generated token. `detokenizer` has `std::string Push(int32_t)` and
  // `std::string Flush()` (IncrementalDecoder): the checker pushes the token
  // unless it is a stop token, and flushes the detokenizer when the sequence
  // ends so that no text is left behind in it. After the sequence finished,
  // further calls return no text and the same finish reason.
  template <class Detokenizer>
  StopUpdate Step(int32_t token, Detokenizer& detokenizer);

  // The primitives Step is made of, for callers that drive the text
  // themselves:
  // Whether `token` ends the sequence by itself (rule 1).
  bool IsStopToken(int32_t token) const;
  // More text of the stream: what can be emitted now; finished with "stop"
  // when a stop string completed in it.
  StopUpdate AppendText(std::string_view text);
  // The last text of the stream and why it ends: scans `tail` like
  // AppendText (a stop string there still wins, with "stop"), then releases
  // the held text and finishes with `reason`.
  StopUpdate EndText(std::string_view tail, FinishReason reason);

  bool finished() const { return finish_reason_.has_value(); }
  // Tokens seen by Step, stop tokens included.
  int64_t num_tokens() const { return num_tokens_; }
  // Bytes held back right now (a proper prefix of some stop string).
  size_t held_bytes() const { return pending_.size(); }

 private:
  struct StopPattern {
    std::string text;
    // failure[j]: length of the longest proper prefix of text[0, j] that is
    // also a suffix of it (the KMP failure function).
    std::vector<uint16_t> failure;
    size_t matched = 0;  // bytes of `text` matching the end of the stream
  };

  StopUpdate Finish(StopUpdate update, FinishReason reason);

  std::vector<StopPattern> patterns_;
  std::vector<int32_t> eos_ids_;         // sorted; empty under ignore_eos
  std::vector<int32_t> stop_token_ids_;  // sorted
  int64_t max_tokens_;
  int64_t num_tokens_ = 0;
  std::string pending_;  // the held-back text
  std::optional<FinishReason> finish_reason_;
};

template <class Detokenizer>
StopUpdate StopChecker::Step(int32_t token, Detokenizer& detokenizer) {
  if (finished()) return StopUpdate{{}, finish_reason_, {}, {}};
  ++num_tokens_;
  if (IsStopToken(token)) {
    StopUpdate update = EndText(detokenizer.Flush(), FinishReason::kStop);
    const bool is_eos = std::binary_search(eos_ids_.begin(), eos_ids_.end(), token);
    if (!update.stop_string && !is_eos) update.stop_token_id = token;
    return update;
  }
  StopUpdate update = AppendText(detokenizer.Push(token));
  if (update.finished() || num_tokens_ < max_tokens_) return update;
  StopUpdate rest = EndText(detokenizer.Flush(), FinishReason::kLength);
  rest.text.insert(0, update.text);
  return rest;
}

}  // namespace lserve
