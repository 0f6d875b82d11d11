#include "tokenizer/normalizer.h"

#include <vector>

#include "core/utf8.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

class UnicodeFormNormalizer final : public Normalizer {
 public:
  explicit UnicodeFormNormalizer(unicode::NormalizationForm form) : form_(form) {}
  Status Normalize(std::string* text, bool*) const override {
    *text = unicode::Normalize(*text, form_);
    return Status::Ok();
  }

 private:
  unicode::NormalizationForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  Status Normalize(std::string* text, bool*) const override {
    *text = unicode::Lowercase(*text);
    return Status::Ok();
  }
};

// Prepends `prefix` to non-empty text.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  Status Normalize(std::string* text, bool*) const override {
    if (!text->empty()) text->insert(0, prefix_);
    return Status::Ok();
  }

 private:
  std::string prefix_;
};

// Replaces every match of the pattern by `content`.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  Status Normalize(std::string* text, bool* at_origin) const override {
    std::vector<MatchSpan> matches;
    LSERVE_RETURN_IF_ERROR(pattern_.FindAll(*text, &matches));
    if (matches.empty()) return Status::Ok();
    // Deleting the first character moves the start off the original offset 0.
    if (content_.empty() && matches.front().start == 0 && matches.front().end > 0) *at_origin = false;
    *text = ReplaceMatches(*text, matches, content_);
    return Status::Ok();
  }

 private:
  Regex pattern_;
  std::string content_;
};

// Strips White_Space (Rust char::is_whitespace) on either side.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  Status Normalize(std::string* text, bool* at_origin) const override {
    size_t begin = 0;
    size_t end = text->size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!unicode::IsWhitespace(unicode::NextCodePoint(*text, &i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>((*text)[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!unicode::IsWhitespace(unicode::NextCodePoint(*text, &i))) break;
        end = start;
      }
    }
    if (begin > 0) *at_origin = false;
    *text = text->substr(begin, end - begin);
    return Status::Ok();
  }

 private:
  bool left_;
  bool right_;
};

// Keeps the characters `keep` accepts.
template <typename Keep>
void FilterChars(std::string* text, bool* at_origin, Keep keep) {
  std::string out;
  out.reserve(text->size());
  size_t i = 0;
  bool first = true;
  while (i < text->size()) {
    const size_t start = i;
    const char32_t cp = unicode::NextCodePoint(*text, &i);
    if (keep(cp)) {
      out.append(*text, start, i - start);
    } else if (first) {
      *at_origin = false;
    }
    first = false;
  }
  *text = std::move(out);
}

class StripAccentsNormalizer final : public Normalizer {
 public:
  Status Normalize(std::string* text, bool* at_origin) const override {
    FilterChars(text, at_origin, [](char32_t cp) { return !unicode::IsCombiningMark(cp); });
    return Status::Ok();
  }
};

// SentencePiece's NMT normalization: drop control characters, map the
// listed separators to a space.
class NmtNormalizer final : public Normalizer {
 public:
  Status Normalize(std::string* text, bool* at_origin) const override {
    FilterChars(text, at_origin, [](char32_t c) {
      return !((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
               c == 0x8F || c == 0x9F);
    });
    std::string out;
    out.reserve(text->size());
    size_t i = 0;
    while (i < text->size()) {
      const size_t start = i;
      const char32_t c = unicode::NextCodePoint(*text, &i);
      const bool space = c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 ||
                         (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 ||
                         c == 0x2581 || c == 0xFEFF || c == 0xFFFD;
      if (space) {
        out.push_back(' ');
      } else {
        out.append(*text, start, i - start);
      }
    }
    *text = std::move(out);
    return Status::Ok();
  }
};

// Maps every byte to its GPT-2 byte-level character.
class ByteLevelNormalizer final : public Normalizer {
 public:
  Status Normalize(std::string* text, bool*) const override {
    *text = byte_level::BytesToChars(*text);
    return Status::Ok();
  }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  Status Normalize(std::string* text, bool* at_origin) const override {
    for (const auto& step : steps_) LSERVE_RETURN_IF_ERROR(step->Normalize(text, at_origin));
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// {"String": s} or {"Regex": r}, as Split and Replace spell their patterns.
Result<Regex> ParsePattern(const json& spec, std::string_view where) {
  const json* pattern = json_util::Find(spec, "pattern");
  if (pattern == nullptr || !pattern->is_object() || pattern->size() != 1) {
    return InvalidArgument(std::string(where) + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
  }
  if (const json* s = json_util::Find(*pattern, "String")) {
    if (!s->is_string()) return json_util::TypeError(where, "pattern.String", "a string");
    return Regex::Literal(s->get<std::string>());
  }
  if (const json* r = json_util::Find(*pattern, "Regex")) {
    if (!r->is_string()) return json_util::TypeError(where, "pattern.Regex", "a string");
    Result<Regex> re = Regex::Compile(r->get<std::string>());
    if (!re.ok()) return re.status().Annotate(where);
    return re;
  }
  return InvalidArgument(std::string(where) + ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace

Result<Regex> ParseSplitPattern(const json& spec, std::string_view where) {
  return ParsePattern(spec, where);
}

Result<std::unique_ptr<Normalizer>> ParseNormalizer(const json& spec, int depth) {
  if (depth > kMaxComponentNesting) return InvalidArgument("normalizer Sequences nest too deeply");
  if (!spec.is_object()) return InvalidArgument("normalizer must be an object");
  LSERVE_ASSIGN_OR_RETURN(std::string type, json_util::GetString(spec, "type", "normalizer"));
  const std::string where = "normalizer " + type;
  using unicode::NormalizationForm;
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(NormalizationForm::kNFC));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(NormalizationForm::kNFD));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(NormalizationForm::kNFKC));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(NormalizationForm::kNFKD));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccentsNormalizer());
  if (type == "Nmt") return std::unique_ptr<Normalizer>(new NmtNormalizer());
  if (type == "ByteLevel") return std::unique_ptr<Normalizer>(new ByteLevelNormalizer());
  if (type == "Prepend") {
    LSERVE_ASSIGN_OR_RETURN(std::string prefix, json_util::GetString(spec, "prepend", where));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(std::move(prefix)));
  }
  if (type == "Replace") {
    LSERVE_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(spec, where));
    LSERVE_ASSIGN_OR_RETURN(std::string content, json_util::GetString(spec, "content", where));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer(std::move(pattern), std::move(content)));
  }
  if (type == "Strip") {
    LSERVE_ASSIGN_OR_RETURN(bool left, json_util::GetBool(spec, "strip_left", false, where));
    LSERVE_ASSIGN_OR_RETURN(bool right, json_util::GetBool(spec, "strip_right", false, where));
    return std::unique_ptr<Normalizer>(new StripNormalizer(left, right));
  }
  if (type == "Sequence") {
    LSERVE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Normalizer>> steps,
                            json_util::GetArrayOf<std::unique_ptr<Normalizer>>(
                                spec, "normalizers", where,
                                [&](const json& item) { return ParseNormalizer(item, depth + 1); }));
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(steps)));
  }
  if (type == "Precompiled" || type == "BertNormalizer") {
    return Unimplemented("normalizer type \"" + type + "\" is not supported");
  }
  return InvalidArgument("unknown normalizer type \"" + type + "\"");
}

}  // namespace lserve
