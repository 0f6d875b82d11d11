// Pre-tokenizers of tokenizer.json ("pre_tokenizer": {...}), with the
// semantics of tokenizers/src/pre_tokenizers: each one splits the pieces of
// text that no added token has claimed yet into smaller pieces, which the
// model then tokenizes one by one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace lserve {

// A piece of the input on its way through the pipeline.
struct Piece {
  std::string text;
  // >= 0 once an added token claimed the piece: later stages pass it through.
  int32_t token_id = -1;
  // The piece starts at offset 0 of the original input (Metaspace's
  // prepend_scheme "first" prepends only to such a piece).
  bool at_origin = false;
};

// How a split treats the delimiters it finds (SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Metaspace's prepend_scheme (shared by the pre-tokenizer and the decoder).
enum class PrependScheme { kFirst, kNever, kAlways };
// "prepend_scheme" of a Metaspace object, or the older "add_prefix_space".
Result<PrependScheme> ParsePrependScheme(const nlohmann::json& spec, std::string_view where);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece with token_id < 0; empty pieces are dropped.
  virtual Status PreTokenize(std::vector<Piece>* pieces) const = 0;
};

Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& spec, int depth = 0);

// Pieces of `text` cut at the (sorted, non-overlapping) `matches` with
// `behavior`; `invert` swaps which spans count as delimiters. Spans are byte
// ranges; empty ones are kept (callers drop them).
std::vector<MatchSpan> SplitSpans(size_t text_size, const std::vector<MatchSpan>& matches,
                                  SplitBehavior behavior, bool invert);

}  // namespace lserve
