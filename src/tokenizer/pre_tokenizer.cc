#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "core/utf8.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/json_util.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

// GPT-2's split pattern (ByteLevel with use_regex).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// The Whitespace pre-tokenizer's Rust-regex pattern \w+|[^\w\s]+, with
// Rust's \w (Alphabetic, marks, Nd, Pc, Join_Control) spelled out.
constexpr std::string_view kRustWord =
    R"(\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\x{24B6}-\x{24E9}\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189})";

struct FlaggedSpan {
  MatchSpan span;
  bool is_match;
};

// Runs `split` on each piece without a token; sub-pieces inherit at_origin
// only when they start where their parent starts. Empty pieces are dropped.
template <typename SplitFn>
Status SplitEach(std::vector<Piece>* pieces, SplitFn split) {
  std::vector<Piece> out;
  out.reserve(pieces->size());
  std::vector<MatchSpan> spans;
  for (Piece& piece : *pieces) {
    if (piece.token_id >= 0) {
      out.push_back(std::move(piece));
      continue;
    }
    spans.clear();
    LSERVE_RETURN_IF_ERROR(split(&piece, &spans));
    for (const MatchSpan& s : spans) {
      if (s.end <= s.start) continue;
      Piece sub;
      sub.text = piece.text.substr(s.start, s.end - s.start);
      sub.at_origin = piece.at_origin && s.start == 0;
      out.push_back(std::move(sub));
    }
  }
  *pieces = std::move(out);
  return Status::Ok();
}

// Every character for which `pred` holds is one match.
template <typename Pred>
std::vector<MatchSpan> CharMatches(const std::string& text, Pred pred) {
  std::vector<MatchSpan> matches;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (pred(unicode::NextCodePoint(text, &i))) matches.push_back({start, i});
  }
  return matches;
}

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  Status PreTokenize(std::vector<Piece>* pieces) const override {
    LSERVE_RETURN_IF_ERROR(SplitEach(pieces, [&](Piece* piece, std::vector<MatchSpan>* spans) {
      if (add_prefix_space_ && (piece->text.empty() || piece->text[0] != ' ')) {
        piece->text = " " + piece->text;
      }
      if (!regex_) {
        spans->push_back({0, piece->text.size()});
        return Status::Ok();
      }
      std::vector<MatchSpan> matches;
      LSERVE_RETURN_IF_ERROR(regex_->FindAll(piece->text, &matches));
      *spans = SplitSpans(piece->text.size(), matches, SplitBehavior::kIsolated, false);
      return Status::Ok();
    }));
    for (Piece& piece : *pieces) {
      if (piece.token_id < 0) piece.text = byte_level::BytesToChars(piece.text);
    }
    return Status::Ok();
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class RegexSplitPreTokenizer final : public PreTokenizer {
 public:
  RegexSplitPreTokenizer(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  Status PreTokenize(std::vector<Piece>* pieces) const override {
    return SplitEach(pieces, [&](Piece* piece, std::vector<MatchSpan>* spans) {
      std::vector<MatchSpan> matches;
      LSERVE_RETURN_IF_ERROR(regex_.FindAll(piece->text, &matches));
      *spans = SplitSpans(piece->text.size(), matches, behavior_, invert_);
      return Status::Ok();
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on single characters that satisfy a predicate (Digits,
// WhitespaceSplit, Punctuation, CharDelimiterSplit).
template <typename Pred>
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  CharSplitPreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}

  Status PreTokenize(std::vector<Piece>* pieces) const override {
    return SplitEach(pieces, [&](Piece* piece, std::vector<MatchSpan>* spans) {
      *spans = SplitSpans(piece->text.size(), CharMatches(piece->text, pred_), behavior_, false);
      return Status::Ok();
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> MakeCharSplit(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplitPreTokenizer<Pred>>(pred, behavior);
}

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    utf8::Append(&replacement_utf8_, replacement);
  }

  Status PreTokenize(std::vector<Piece>* pieces) const override {
    return SplitEach(pieces, [&](Piece* piece, std::vector<MatchSpan>* spans) {
      std::string& text = piece->text;
      if (text.find(' ') != std::string::npos) {
        std::string replaced;
        replaced.reserve(text.size() + text.size() / 2);
        for (const char c : text) {
          if (c == ' ') {
            replaced += replacement_utf8_;
          } else {
            replaced.push_back(c);
          }
        }
        text = std::move(replaced);
      }
      const bool starts_with_replacement = text.compare(0, replacement_utf8_.size(), replacement_utf8_) == 0;
      if (!starts_with_replacement &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece->at_origin))) {
        text = replacement_utf8_ + text;
      }
      if (split_) {
        const char32_t r = replacement_;
        *spans = SplitSpans(text.size(), CharMatches(text, [r](char32_t c) { return c == r; }),
                            SplitBehavior::kMergedWithNext, false);
      } else {
        spans->push_back({0, text.size()});
      }
      return Status::Ok();
    });
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  Status PreTokenize(std::vector<Piece>* pieces) const override {
    for (const auto& step : steps_) LSERVE_RETURN_IF_ERROR(step->PreTokenize(pieces));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

Result<SplitBehavior> ParseBehavior(const json& spec, std::string_view where, SplitBehavior fallback) {
  const json* v = json_util::Find(spec, "behavior");
  if (v == nullptr) return fallback;
  if (v->is_string()) {
    const std::string& name = v->get_ref<const std::string&>();
    if (name == "Removed") return SplitBehavior::kRemoved;
    if (name == "Isolated") return SplitBehavior::kIsolated;
    if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
    if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
    if (name == "Contiguous") return SplitBehavior::kContiguous;
  }
  return json_util::TypeError(where, "behavior",
                              "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

Result<std::unique_ptr<PreTokenizer>> ParseMetaspace(const json& spec) {
  constexpr std::string_view kWhere = "pre_tokenizer Metaspace";
  LSERVE_ASSIGN_OR_RETURN(char32_t replacement, json_util::GetChar(spec, "replacement", kWhere));
  LSERVE_ASSIGN_OR_RETURN(PrependScheme scheme, ParsePrependScheme(spec, kWhere));
  LSERVE_ASSIGN_OR_RETURN(bool split, json_util::GetBool(spec, "split", true, kWhere));
  return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(replacement, scheme, split));
}

}  // namespace

Result<PrependScheme> ParsePrependScheme(const json& spec, std::string_view where) {
  PrependScheme scheme = PrependScheme::kAlways;
  const json* v = json_util::Find(spec, "prepend_scheme");
  if (v != nullptr) {
    const std::string name = v->is_string() ? v->get<std::string>() : "";
    if (name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      scheme = PrependScheme::kNever;
    } else if (name == "always") {
      scheme = PrependScheme::kAlways;
    } else {
      return json_util::TypeError(where, "prepend_scheme", "one of first, never, always");
    }
  }
  // Files older than prepend_scheme say add_prefix_space instead.
  if (const json* a = json_util::Find(spec, "add_prefix_space")) {
    if (!a->is_boolean()) return json_util::TypeError(where, "add_prefix_space", "a boolean");
    if (!a->get<bool>()) {
      if (v != nullptr && scheme != PrependScheme::kNever) {
        return InvalidArgument(std::string(where) + ": add_prefix_space does not match prepend_scheme");
      }
      scheme = PrependScheme::kNever;
    }
  }
  return scheme;
}

std::vector<MatchSpan> SplitSpans(size_t text_size, const std::vector<MatchSpan>& matches,
                                  SplitBehavior behavior, bool invert) {
  // The whole text as alternating delimiter / non-delimiter spans.
  std::vector<FlaggedSpan> covering;
  if (text_size == 0) {
    covering.push_back({{0, 0}, false});
  } else {
    size_t prev = 0;
    for (const MatchSpan& m : matches) {
      if (prev != m.start) covering.push_back({{prev, m.start}, false});
      covering.push_back({m, true});
      prev = m.end;
    }
    if (prev != text_size) covering.push_back({{prev, text_size}, false});
  }
  if (invert) {
    for (FlaggedSpan& f : covering) f.is_match = !f.is_match;
  }
  std::vector<MatchSpan> out;
  out.reserve(covering.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const FlaggedSpan& f : covering) out.push_back(f.span);
      break;
    case SplitBehavior::kRemoved:
      for (const FlaggedSpan& f : covering) {
        if (!f.is_match) out.push_back(f.span);
      }
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const FlaggedSpan& f : covering) {
        if (f.is_match == previous_match && !out.empty()) {
          out.back().end = f.span.end;
        } else {
          out.push_back(f.span);
        }
        previous_match = f.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const FlaggedSpan& f : covering) {
        if (f.is_match && !previous_match && !out.empty()) {
          out.back().end = f.span.end;
        } else {
          out.push_back(f.span);
        }
        previous_match = f.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (size_t k = covering.size(); k-- > 0;) {
        const FlaggedSpan& f = covering[k];
        if (f.is_match && !previous_match && !out.empty()) {
          out.back().start = f.span.start;
        } else {
          out.push_back(f.span);
        }
        previous_match = f.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  return out;
}

Result<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json& spec, int depth) {
  if (depth > kMaxComponentNesting) return InvalidArgument("pre_tokenizer Sequences nest too deeply");
  if (!spec.is_object()) return InvalidArgument("pre_tokenizer must be an object");
  LSERVE_ASSIGN_OR_RETURN(std::string type, json_util::GetString(spec, "type", "pre_tokenizer"));
  const std::string where = "pre_tokenizer " + type;
  if (type == "ByteLevel") {
    LSERVE_ASSIGN_OR_RETURN(bool add_prefix_space, json_util::GetBool(spec, "add_prefix_space", true, where));
    LSERVE_ASSIGN_OR_RETURN(bool use_regex, json_util::GetBool(spec, "use_regex", true, where));
    std::optional<Regex> regex;
    if (use_regex) {
      LSERVE_ASSIGN_OR_RETURN(Regex re, Regex::Compile(kGpt2Pattern));
      regex = std::move(re);
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(regex)));
  }
  if (type == "Split") {
    LSERVE_ASSIGN_OR_RETURN(Regex regex, ParseSplitPattern(spec, where));
    if (json_util::Find(spec, "behavior") == nullptr) return json_util::TypeError(where, "behavior", "present");
    LSERVE_ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(spec, where, SplitBehavior::kIsolated));
    LSERVE_ASSIGN_OR_RETURN(bool invert, json_util::GetBool(spec, "invert", false, where));
    return std::unique_ptr<PreTokenizer>(new RegexSplitPreTokenizer(std::move(regex), behavior, invert));
  }
  if (type == "Metaspace") return ParseMetaspace(spec);
  if (type == "Digits") {
    LSERVE_ASSIGN_OR_RETURN(bool individual, json_util::GetBool(spec, "individual_digits", false, where));
    return MakeCharSplit([](char32_t c) { return unicode::IsNumeric(c); },
                         individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "WhitespaceSplit") {
    return MakeCharSplit([](char32_t c) { return unicode::IsWhitespace(c); }, SplitBehavior::kRemoved);
  }
  if (type == "Whitespace") {
    const std::string word(kRustWord);
    LSERVE_ASSIGN_OR_RETURN(Regex regex, Regex::Compile("[" + word + "]+|[^" + word + "\\s]+"));
    return std::unique_ptr<PreTokenizer>(
        new RegexSplitPreTokenizer(std::move(regex), SplitBehavior::kRemoved, /*invert=*/true));
  }
  if (type == "Punctuation") {
    LSERVE_ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(spec, where, SplitBehavior::kIsolated));
    return MakeCharSplit([](char32_t c) { return unicode::IsPunctuation(c); }, behavior);
  }
  if (type == "CharDelimiterSplit") {
    LSERVE_ASSIGN_OR_RETURN(char32_t delimiter, json_util::GetChar(spec, "delimiter", where));
    return MakeCharSplit([delimiter](char32_t c) { return c == delimiter; }, SplitBehavior::kRemoved);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(MakeCharSplit([](char32_t c) { return unicode::IsWhitespace(c); }, SplitBehavior::kRemoved));
    steps.push_back(MakeCharSplit([](char32_t c) { return unicode::IsPunctuation(c); }, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
  }
  if (type == "Sequence") {
    LSERVE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<PreTokenizer>> steps,
                            json_util::GetArrayOf<std::unique_ptr<PreTokenizer>>(
                                spec, "pretokenizers", where,
                                [&](const json& item) { return ParsePreTokenizer(item, depth + 1); }));
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
  }
  if (type == "UnicodeScripts" || type == "FixedLength") {
    return Unimplemented("pre_tokenizer type \"" + type + "\" is not supported");
  }
  return InvalidArgument("unknown pre_tokenizer type \"" + type + "\"");
}

}  // namespace lserve
