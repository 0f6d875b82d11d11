// Regex: the split and replace patterns of tokenizer.json, run by PCRE2.
//
// The tokenizers crate compiles these patterns with Oniguruma (Ruby syntax,
// Unicode classes). PCRE2 (UTF + UCP, JIT when available) understands the
// same syntax except for a few classes and flags, which Compile() rewrites:
//   \s, \S  -> the White_Space property (PCRE2 adds U+180E)
//   \w, \W  -> Oniguruma's word class (PCRE2 omits marks)
//   \h, \H  -> hex digits (Ruby), not horizontal space
//   \uHHHH  -> \x{HHHH};  (?m) -> (?s) (Ruby's dot-all);  ^ $ match at lines
// Matching never recurses on the C stack: the JIT uses a heap-allocated
// stack and the interpreter heap frames, both bounded; hitting a bound is a
// ResourceExhausted status, not a crash.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lserve {

struct MatchSpan {
  size_t start = 0;  // byte offsets into the searched text
  size_t end = 0;
};

class Regex {
 public:
  // `pattern` in Oniguruma syntax, as tokenizer.json spells it.
  static Result<Regex> Compile(std::string_view pattern);
  // Matches `text` literally (tokenizer.json's {"String": ...} patterns).
  static Result<Regex> Literal(std::string_view text);

  // Appends the matches in `text` (well-formed UTF-8), left to right and
  // non-overlapping, exactly as Oniguruma's find_iter yields them: an empty
  // match right where the previous match ended is skipped and the search
  // moves on by one character.
  Status FindAll(std::string_view text, std::vector<MatchSpan>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::string literal_;                        // when is_literal_ and non-empty
  bool is_literal_ = false;
  std::shared_ptr<const Compiled> compiled_;   // PCRE2 code (shared, read-only)
};

// `text` with every match (sorted, non-overlapping) replaced by `content`.
std::string ReplaceMatches(std::string_view text, const std::vector<MatchSpan>& matches,
                           std::string_view content);

// The Oniguruma -> PCRE2 rewrite Compile() applies (exposed for tests).
Result<std::string> TranslateOnigurumaPattern(std::string_view pattern);

}  // namespace lserve
