#include "tokenizer/decoder.h"

#include "core/utf8.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_util.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) AppendByteLevelBytes(t, &bytes);
    tokens->assign(1, utf8::Sanitize(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool drop_in_first) : drop_in_first_(drop_in_first) {
    utf8::Append(&replacement_, replacement);
  }
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (t.find(replacement_) == std::string::npos) continue;
      std::string out;
      out.reserve(t.size());
      size_t pos = 0;
      for (size_t hit; (hit = t.find(replacement_, pos)) != std::string::npos; pos = hit + replacement_.size()) {
        out.append(t, pos, hit - pos);
        // The first token loses its replacement characters (the prefix
        // space the pre-tokenizer added), unless nothing was prepended.
        if (!(i == 0 && drop_in_first_)) out.push_back(' ');
      }
      out.append(t, pos, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<MatchSpan> matches;
    for (std::string& t : *tokens) {
      matches.clear();
      // A literal or a compiled pattern on one token: cannot exhaust limits
      // in practice; on failure the token is left as is.
      if (!pattern_.FindAll(t, &matches).ok() || matches.empty()) continue;
      t = ReplaceMatches(t, matches, content_);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (utf8::IsValid(run)) {
        out.push_back(run);
      } else {
        // An invalid run becomes one U+FFFD per byte, valid parts included.
        for (size_t k = 0; k < run.size(); ++k) out.emplace_back(kReplacementChar);
      }
      run.clear();
    };
    for (std::string& t : *tokens) {
      const int b = ByteFallbackValue(t);
      if (b >= 0) {
        run.push_back(static_cast<char>(b));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string joined;
    for (const std::string& t : *tokens) joined += t;
    tokens->assign(1, std::move(joined));
  }
};

// Removes up to `start` leading `content` characters from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start) : start_(start) { utf8::Append(&content_, content); }
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      size_t cut = 0;
      for (size_t k = 0; k < start_ && t.compare(cut, content_.size(), content_) == 0; ++k) {
        cut += content_.size();
      }
      if (cut > 0) t.erase(0, cut);
    }
  }

 private:
  std::string content_;
  size_t start_;
};

// BPEDecoder: the end-of-word suffix becomes a space (nothing after the
// last token).
class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      const std::string with = i + 1 == tokens->size() ? "" : " ";
      std::string out;
      size_t pos = 0;
      for (size_t hit; (hit = t.find(suffix_, pos)) != std::string::npos; pos = hit + suffix_.size()) {
        out.append(t, pos, hit - pos);
        out += with;
      }
      out.append(t, pos, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int ByteFallbackValue(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  // Rust's u8::from_str_radix also takes a leading '+'.
  const char a = t[3], b = t[4];
  if (a == '+') return HexDigit(b);
  const int hi = HexDigit(a), lo = HexDigit(b);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

void AppendByteLevelBytes(std::string_view token, std::string* out) {
  if (!byte_level::CharsToBytes(token, out)) out->append(token);
}

std::string RunDecoder(const Decoder* decoder, std::vector<std::string> tokens) {
  std::string out;
  if (decoder == nullptr) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  decoder->DecodeChain(&tokens);
  for (const std::string& t : tokens) out += t;
  return out;
}

Result<std::unique_ptr<Decoder>> ParseDecoder(const json& spec, DecoderTraits* traits, int depth) {
  if (depth > kMaxComponentNesting) return InvalidArgument("decoder Sequences nest too deeply");
  if (!spec.is_object()) return InvalidArgument("decoder must be an object");
  LSERVE_ASSIGN_OR_RETURN(std::string type, json_util::GetString(spec, "type", "decoder"));
  const std::string where = "decoder " + type;
  if (type == "ByteLevel") {
    traits->byte_level = true;
    return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  }
  if (type == "Metaspace") {
    LSERVE_ASSIGN_OR_RETURN(char32_t replacement, json_util::GetChar(spec, "replacement", where));
    LSERVE_ASSIGN_OR_RETURN(PrependScheme scheme, ParsePrependScheme(spec, where));
    const bool drop_in_first = scheme != PrependScheme::kNever;
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(replacement, drop_in_first));
  }
  if (type == "Replace") {
    LSERVE_ASSIGN_OR_RETURN(Regex pattern, ParseSplitPattern(spec, where));
    LSERVE_ASSIGN_OR_RETURN(std::string content, json_util::GetString(spec, "content", where));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(pattern), std::move(content)));
  }
  if (type == "ByteFallback") {
    traits->byte_fallback = true;
    return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  }
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Strip") {
    LSERVE_ASSIGN_OR_RETURN(char32_t content, json_util::GetChar(spec, "content", where));
    LSERVE_ASSIGN_OR_RETURN(uint64_t start, json_util::GetUInt(spec, "start", 0, 1 << 20, where));
    LSERVE_ASSIGN_OR_RETURN(uint64_t stop, json_util::GetUInt(spec, "stop", 0, 1 << 20, where));
    if (stop != 0) return Unimplemented("decoder Strip with stop > 0 is not supported");
    return std::unique_ptr<Decoder>(new StripDecoder(content, static_cast<size_t>(start)));
  }
  if (type == "BPEDecoder") {
    std::string suffix = "</w>";
    if (json_util::Find(spec, "suffix") != nullptr) {
      LSERVE_ASSIGN_OR_RETURN(suffix, json_util::GetString(spec, "suffix", where));
    }
    return std::unique_ptr<Decoder>(new BpeSuffixDecoder(std::move(suffix)));
  }
  if (type == "Sequence") {
    LSERVE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<Decoder>> steps,
                            json_util::GetArrayOf<std::unique_ptr<Decoder>>(
                                spec, "decoders", where,
                                [&](const json& item) { return ParseDecoder(item, traits, depth + 1); }));
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps)));
  }
  if (type == "WordPiece" || type == "CTC") {
    return Unimplemented("decoder type \"" + type + "\" is not supported");
  }
  return InvalidArgument("unknown decoder type \"" + type + "\"");
}

}  // namespace lserve
