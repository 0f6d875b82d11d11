#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>

#include "tokenizer/unicode.h"

namespace lserve {
namespace {

// White_Space, the set Oniguruma's (and Rust's) \s matches.
constexpr std::string_view kSpaceItems =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's Unicode \w: letters, letter numbers, marks, decimal digits,
// connector punctuation, the Other_Alphabetic symbols and the Latin-1 digits
// it counts as word characters (checked against the tokenizers crate).
constexpr std::string_view kWordItems =
    "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}\\x{24B6}-\\x{24E9}"
    "\\x{1F130}-\\x{1F149}\\x{1F150}-\\x{1F169}\\x{1F170}-\\x{1F189}";
constexpr std::string_view kHexItems = "0-9a-fA-F";

// Bounds for one pcre2_match call. The JIT stack lives on the heap; the
// interpreter keeps its backtracking frames on the heap too.
constexpr uint32_t kMatchLimit = 100'000'000;
constexpr uint32_t kHeapLimitKiB = 256 * 1024;
constexpr size_t kJitStackMax = 8 << 20;

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string Pcre2ErrorMessage(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

// Per-thread match state, reused by every FindAll on this thread.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (context != nullptr) {
      pcre2_set_match_limit(context, kMatchLimit);
      pcre2_set_heap_limit(context, kHeapLimitKiB);
      jit_stack = pcre2_jit_stack_create(32 * 1024, kJitStackMax, nullptr);
      if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
    }
  }
  ~MatchScratch() {
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
    if (context) pcre2_match_context_free(context);
    if (data) pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& ThreadScratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

Result<std::string> TranslateOnigurumaPattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  bool class_start = false;  // just after '[' or '[^' (a ']' here is literal)
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) return InvalidArgument("regex ends with a backslash");
      const char e = p[i + 1];
      class_start = false;
      std::string_view items;
      bool negated = false;
      switch (e) {
        case 's': items = kSpaceItems; break;
        case 'S': items = kSpaceItems; negated = true; break;
        case 'w': items = kWordItems; break;
        case 'W': items = kWordItems; negated = true; break;
        case 'h': items = kHexItems; break;
        case 'H': items = kHexItems; negated = true; break;
        default: break;
      }
      if (!items.empty()) {
        if (!in_class) {
          out += negated ? "[^" : "[";
          out += items;
          out += "]";
        } else if (!negated) {
          out += items;
        } else {
          // A negated class inside a class has no PCRE2 spelling without
          // set operations; keep PCRE2's own (near-identical) meaning.
          if (e == 'H') return Unimplemented("regex: \\H inside a character class");
          out.push_back('\\');
          out.push_back(e);
        }
        i += 2;
        continue;
      }
      if (e == 'u' && i + 6 <= p.size() && IsHexDigit(p[i + 2]) &&
          IsHexDigit(p[i + 3]) && IsHexDigit(p[i + 4]) && IsHexDigit(p[i + 5])) {
        out += "\\x{";
        out.append(p.substr(i + 2, 4));
        out += "}";
        i += 6;
        continue;
      }
      out.push_back('\\');
      // Copy the escaped character whole (it may be multi-byte UTF-8).
      const size_t len = unicode::SequenceLength(static_cast<uint8_t>(e));
      out.append(p.substr(i + 1, len));
      i += 1 + len;
      continue;
    }
    if (in_class) {
      if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') {
          // POSIX bracket [:alpha:]: copy through to the closing ":]".
          const size_t close = p.find(":]", i + 2);
          if (close == std::string_view::npos) return InvalidArgument("regex: unterminated [: class");
          out.append(p.substr(i, close + 2 - i));
          i = close + 2;
          class_start = false;
          continue;
        }
        return Unimplemented("regex: nested character classes are not supported");
      }
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        return Unimplemented("regex: character class intersection (&&) is not supported");
      }
      if (c == ']' && !class_start) in_class = false;
      class_start = false;
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '[') {
      in_class = true;
      class_start = true;
      out.push_back(c);
      ++i;
      if (i < p.size() && p[i] == '^') {
        out.push_back('^');
        ++i;
      }
      continue;
    }
    if (c == '(' && i + 2 < p.size() && p[i + 1] == '?') {
      // Inline options: Ruby's m is PCRE2's s; Ruby has no s.
      size_t j = i + 2;
      std::string flags;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) {
        flags.push_back(p[j] == 'm' ? 's' : p[j]);
        ++j;
      }
      if (!flags.empty() && j < p.size() && (p[j] == ')' || p[j] == ':')) {
        out += "(?";
        out += flags;
        i = j;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  if (in_class) return InvalidArgument("regex: unterminated character class");
  return out;
}

std::string ReplaceMatches(std::string_view text, const std::vector<MatchSpan>& matches,
                           std::string_view content) {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (const MatchSpan& m : matches) {
    out.append(text.substr(last, m.start - last));
    out.append(content);
    last = m.end;
  }
  out.append(text.substr(last));
  return out;
}

Result<Regex> Regex::Compile(std::string_view pattern) {
  LSERVE_ASSIGN_OR_RETURN(std::string translated, TranslateOnigurumaPattern(pattern));
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C,
                                   &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return InvalidArgument("cannot compile regex \"" + std::string(pattern) +
                           "\": " + Pcre2ErrorMessage(error_code) + " at offset " +
                           std::to_string(error_offset));
  }
  // The JIT is an accelerator only: without it the interpreter runs.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  Regex re;
  re.pattern_ = std::string(pattern);
  re.compiled_ = std::move(compiled);
  return re;
}

Result<Regex> Regex::Literal(std::string_view text) {
  if (text.empty()) {
    // The empty literal matches between every two characters (as in the
    // tokenizers crate, where it is an empty escaped regex).
    LSERVE_ASSIGN_OR_RETURN(Regex re, Compile(""));
    re.is_literal_ = true;
    return re;
  }
  Regex re;
  re.pattern_ = std::string(text);
  re.literal_ = std::string(text);
  re.is_literal_ = true;
  return re;
}

Status Regex::FindAll(std::string_view text, std::vector<MatchSpan>* out) const {
  if (is_literal_ && !literal_.empty()) {
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out->push_back({pos, pos + literal_.size()});
      pos += literal_.size();
    }
    return Status::Ok();
  }
  if (compiled_ == nullptr) return Internal("regex used before compilation");
  MatchScratch& scratch = ThreadScratch();
  if (scratch.data == nullptr || scratch.context == nullptr) {
    return ResourceExhausted("cannot allocate regex match state");
  }
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (search_from <= text.size()) {
    // The text was validated as UTF-8 once; checking it again per call
    // would make a scan quadratic.
    const int rc = pcre2_match(compiled_->code, subject, text.size(), search_from,
                               PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return ResourceExhausted("regex \"" + pattern_ + "\" gave up on a " +
                               std::to_string(text.size()) + "-byte text: " +
                               Pcre2ErrorMessage(rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (start == end && have_last && last_end == end) {
      if (search_from >= text.size()) break;
      search_from += unicode::SequenceLength(static_cast<uint8_t>(text[search_from]));
      continue;
    }
    out->push_back({start, end});
    have_last = true;
    last_end = end;
    search_from = end;
  }
  return Status::Ok();
}

}  // namespace lserve
