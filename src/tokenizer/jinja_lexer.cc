#include "tokenizer/jinja_lexer.h"

#include <cerrno>
#include <cstdlib>

#include "core/utf8.h"
#include "tokenizer/jinja_text.h"

namespace lserve::jinja {
namespace {

Status SyntaxError(int line, const std::string& message) {
  return InvalidArgument("chat template syntax error (line " + std::to_string(line) + "): " + message);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

int CountNewlines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// Length of the Python-whitespace run at s[pos] (Unicode aware).
size_t WhitespaceRun(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (!IsPySpace(c)) break;
      ++i;
      continue;
    }
    size_t len = 1;
    char32_t cp = utf8::DecodeOne(s, i, &len);
    if (!IsPySpace(cp)) break;
    i += len;
  }
  return i - pos;
}

// Python str.rstrip() on text.
std::string_view RStripPy(std::string_view s) {
  std::u32string cps = DecodeCodePoints(s);
  size_t keep = cps.size();
  while (keep > 0 && IsPySpace(cps[keep - 1])) --keep;
  return s.substr(0, EncodeCodePoints(std::u32string_view(cps).substr(0, keep)).size());
}

bool AllPyWhitespace(std::string_view s) { return !s.empty() && WhitespaceRun(s, 0) == s.size(); }

// The whitespace control jinja2 applies to the text before a tag:
// "{%-" strips all trailing whitespace; otherwise, with lstrip_blocks, a block
// or comment tag that is alone on its line (only spaces before it) takes the
// indentation with it. "{%+" and variable tags keep the text.
std::string_view StripBeforeTag(std::string_view text, char sign, bool is_variable, bool line_starting) {
  if (sign == '-') return RStripPy(text);
  if (sign == '+' || is_variable) return text;
  size_t nl = text.rfind('\n');
  size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
  if ((line_start > 0 || line_starting) && AllPyWhitespace(text.substr(line_start))) {
    return text.substr(0, line_start);
  }
  return text;
}

// Decodes a Python string literal body the way jinja2 does
// (value.encode("ascii", "backslashreplace").decode("unicode-escape")).
Result<std::string> DecodeStringLiteral(std::string_view body, int line) {
  std::string out;
  out.reserve(body.size());
  size_t i = 0;
  auto hex_value = [&](size_t start, size_t count, uint32_t* value) {
    if (start + count > body.size()) return false;
    uint32_t v = 0;
    for (size_t k = 0; k < count; ++k) {
      char c = body[start + k];
      int d = IsDigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    *value = v;
    return true;
  };
  while (i < body.size()) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      ++i;
      continue;
    }
    char e = body[i + 1];
    unsigned char ue = static_cast<unsigned char>(e);
    if (ue >= 0x80) {
      // backslashreplace turned the character into an escape whose own
      // backslash the decoder then pairs with this one.
      size_t len = 1;
      char32_t cp = utf8::DecodeOne(body, i + 1, &len);
      AppendPyHexEscape(cp, &out);
      i += 1 + len;
      continue;
    }
    i += 2;
    switch (e) {
      case '\n': break;
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x':
      case 'u':
      case 'U': {
        size_t count = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        if (!hex_value(i, count, &cp)) return SyntaxError(line, "truncated \\" + std::string(1, e) + " escape");
        if (cp > 0x10FFFF) return SyntaxError(line, "illegal Unicode character in string escape");
        utf8::Append(&out, cp);
        i += count;
        break;
      }
      case 'N': return SyntaxError(line, "\\N{...} escapes are not supported");
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k, ++i) {
            cp = cp * 8 + static_cast<uint32_t>(body[i] - '0');
          }
          utf8::Append(&out, cp);
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

// jinja2's float_re: digits with optional '_' separators and either a
// fraction or an exponent; never right after a '.' (so "a.0.1" stays items).
size_t MatchFloat(std::string_view s, size_t pos) {
  if (pos > 0 && s[pos - 1] == '.') return 0;
  auto digits = [&](size_t i) {  // (\d+_)*\d+ ; returns end or npos
    size_t start = i;
    while (true) {
      size_t run = i;
      while (run < s.size() && IsDigit(s[run])) ++run;
      if (run == i) return start == i ? std::string_view::npos : i - 1;  // dangling '_'
      i = run;
      if (i + 1 < s.size() && s[i] == '_' && IsDigit(s[i + 1])) {
        ++i;
        continue;
      }
      return i;
    }
  };
  size_t i = digits(pos);
  if (i == std::string_view::npos) return 0;
  size_t after_fraction = std::string_view::npos;
  if (i < s.size() && s[i] == '.') {
    size_t f = digits(i + 1);
    if (f != std::string_view::npos) after_fraction = f;
  }
  size_t mantissa_end = after_fraction != std::string_view::npos ? after_fraction : i;
  if (mantissa_end < s.size() && (s[mantissa_end] == 'e' || s[mantissa_end] == 'E')) {
    size_t e = mantissa_end + 1;
    if (e < s.size() && (s[e] == '+' || s[e] == '-')) ++e;
    size_t exp_end = digits(e);
    if (exp_end != std::string_view::npos) return exp_end - pos;
  }
  return after_fraction != std::string_view::npos ? after_fraction - pos : 0;
}

// jinja2's integer_re: 0b/0o/0x literals, decimals with '_' separators.
size_t MatchInteger(std::string_view s, size_t pos, int* base) {
  auto run = [&](size_t i, auto is_digit) {
    size_t start = i;
    while (i < s.size()) {
      if (is_digit(s[i])) {
        ++i;
      } else if (s[i] == '_' && i + 1 < s.size() && is_digit(s[i + 1])) {
        ++i;
      } else {
        break;
      }
    }
    return i - start;
  };
  *base = 10;
  if (s[pos] == '0' && pos + 1 < s.size()) {
    char p = static_cast<char>(s[pos + 1] | 0x20);
    int b = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
    if (b != 0) {
      auto is_digit = [b](char c) {
        if (b == 2) return c == '0' || c == '1';
        if (b == 8) return c >= '0' && c <= '7';
        return IsDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
      };
      size_t start = pos + 2;
      if (start < s.size() && s[start] == '_') ++start;
      size_t n = run(start, is_digit);
      if (n > 0) {
        *base = b;
        return start + n - pos;
      }
    }
  }
  if (s[pos] == '0') return 1 + run(pos + 1, [](char c) { return c == '0'; });
  if (s[pos] >= '1' && s[pos] <= '9') return run(pos, IsDigit);
  return 0;
}

constexpr std::string_view kOperators[] = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
    "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
};

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(source) {}

  Result<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      size_t tag = FindTagStart(pos_);
      if (tag == std::string_view::npos) {
        EmitData(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      std::string_view text = src_.substr(pos_, tag - pos_);
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      size_t after_begin = tag + 2 + (sign ? 1 : 0);
      size_t raw_body = kind == '%' ? MatchRawBegin(after_begin) : std::string_view::npos;
      EmitData(StripBeforeTag(text, sign, kind == '{', line_starting_));
      line_ += CountNewlines(text);
      if (raw_body != std::string_view::npos) {
        LSERVE_RETURN_IF_ERROR(LexRaw(raw_body));
      } else if (kind == '#') {
        LSERVE_RETURN_IF_ERROR(LexComment(after_begin));
      } else {
        LSERVE_RETURN_IF_ERROR(LexTag(kind == '{', after_begin));
      }
    }
    Token eof;
    eof.type = TokenType::kEof;
    eof.line = line_;
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    size_t i = from;
    while ((i = src_.find('{', i)) != std::string_view::npos) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
      ++i;
    }
    return std::string_view::npos;
  }

  void EmitData(std::string_view text) {
    if (text.empty()) return;
    Token t;
    t.type = TokenType::kData;
    t.text = std::string(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  void Emit(TokenType type, std::string text = {}) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  // "{% raw %}" (after "{%" and its sign): returns where the raw body starts.
  size_t MatchRawBegin(size_t i) const {
    i += WhitespaceRun(src_, i);
    if (src_.substr(i, 3) != "raw") return std::string_view::npos;
    i += 3;
    i += WhitespaceRun(src_, i);
    if (src_.substr(i, 3) == "-%}") return i + 3 + WhitespaceRun(src_, i + 3);
    if (src_.substr(i, 2) == "%}") return i + 2;
    return std::string_view::npos;
  }

  Status LexRaw(size_t body_start) {
    size_t search = body_start;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string_view::npos) return SyntaxError(line_, "Missing end of raw directive");
      size_t i = tag + 2;
      char sign = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i] : 0;
      if (sign) ++i;
      i += WhitespaceRun(src_, i);
      if (src_.substr(i, 6) != "endraw") {
        search = tag + 2;
        continue;
      }
      i += 6;
      i += WhitespaceRun(src_, i);
      size_t end;
      if (src_.substr(i, 3) == "+%}") {
        end = i + 3;
      } else if (src_.substr(i, 3) == "-%}") {
        end = i + 3 + WhitespaceRun(src_, i + 3);
      } else if (src_.substr(i, 2) == "%}") {
        end = i + 2 + (i + 2 < src_.size() && src_[i + 2] == '\n' ? 1 : 0);
      } else {
        search = tag + 2;
        continue;
      }
      std::string_view body = src_.substr(body_start, tag - body_start);
      line_starting_ = src_[body_start - 1] == '\n';
      EmitData(StripBeforeTag(body, sign, false, line_starting_));
      line_ += CountNewlines(src_.substr(body_start, end - body_start));
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return Status::Ok();
    }
  }

  Status LexComment(size_t body_start) {
    size_t close = src_.find("#}", body_start);
    if (close == std::string_view::npos) return SyntaxError(line_, "Missing end of comment tag");
    size_t end = close + 2;
    char sign = close > body_start ? src_[close - 1] : 0;
    if (sign == '-') {
      end += WhitespaceRun(src_, end);
    } else if (sign != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    line_ += CountNewlines(src_.substr(body_start, end - body_start));
    line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
    return Status::Ok();
  }

  // Lexes the inside of {{ ... }} or {% ... %} starting at `i`.
  Status LexTag(bool is_variable, size_t i) {
    Emit(is_variable ? TokenType::kVariableBegin : TokenType::kBlockBegin);
    std::vector<char> brackets;
    while (true) {
      size_t ws = WhitespaceRun(src_, i);
      line_ += CountNewlines(src_.substr(i, ws));
      i += ws;
      if (i >= src_.size()) {
        return SyntaxError(line_, is_variable ? "unexpected end of template, expected end of print statement"
                                              : "unexpected end of template, expected end of statement block");
      }
      if (brackets.empty()) {
        size_t end = MatchTagEnd(is_variable, i);
        if (end != std::string_view::npos) {
          Emit(is_variable ? TokenType::kVariableEnd : TokenType::kBlockEnd);
          line_ += CountNewlines(src_.substr(i, end - i));
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return Status::Ok();
        }
      }
      LSERVE_ASSIGN_OR_RETURN(i, LexTagToken(i, &brackets));
    }
  }

  size_t MatchTagEnd(bool is_variable, size_t i) const {
    if (is_variable) {
      if (src_.substr(i, 3) == "-}}") return i + 3 + WhitespaceRun(src_, i + 3);
      if (src_.substr(i, 2) == "}}") return i + 2;
      return std::string_view::npos;
    }
    if (src_.substr(i, 3) == "+%}") return i + 3;
    if (src_.substr(i, 3) == "-%}") return i + 3 + WhitespaceRun(src_, i + 3);
    if (src_.substr(i, 2) == "%}") return i + 2 + (i + 2 < src_.size() && src_[i + 2] == '\n' ? 1 : 0);
    return std::string_view::npos;
  }

  Result<size_t> LexTagToken(size_t i, std::vector<char>* brackets) {
    char c = src_[i];
    if (IsDigit(c)) {
      size_t n = MatchFloat(src_, i);
      if (n > 0) {
        std::string text;
        for (char d : src_.substr(i, n)) {
          if (d != '_') text.push_back(d);
        }
        Token t;
        t.type = TokenType::kFloat;
        t.float_value = std::strtod(text.c_str(), nullptr);
        t.text = std::move(text);
        t.line = line_;
        tokens_.push_back(std::move(t));
        return i + n;
      }
      int base = 10;
      n = MatchInteger(src_, i, &base);
      std::string digits;
      for (char d : src_.substr(i + (base == 10 ? 0 : 2), n - (base == 10 ? 0 : 2))) {
        if (d != '_') digits.push_back(d);
      }
      errno = 0;
      unsigned long long value = std::strtoull(digits.c_str(), nullptr, base);
      if (errno == ERANGE || value > static_cast<unsigned long long>(INT64_MAX)) {
        return SyntaxError(line_, "integer literal too large");
      }
      Token t;
      t.type = TokenType::kInteger;
      t.int_value = static_cast<int64_t>(value);
      t.text = std::string(src_.substr(i, n));
      t.line = line_;
      tokens_.push_back(std::move(t));
      return i + n;
    }
    if (IsNameStart(c)) {
      size_t j = i + 1;
      while (j < src_.size() && IsNameChar(src_[j])) ++j;
      Emit(TokenType::kName, std::string(src_.substr(i, j - i)));
      return j;
    }
    if (c == '\'' || c == '"') {
      size_t j = i + 1;
      while (j < src_.size() && src_[j] != c) j += src_[j] == '\\' ? 2 : 1;
      if (j >= src_.size()) return SyntaxError(line_, "unexpected char '" + std::string(1, c) + "'");
      int start_line = line_;
      LSERVE_ASSIGN_OR_RETURN(std::string value, DecodeStringLiteral(src_.substr(i + 1, j - i - 1), line_));
      Token t;
      t.type = TokenType::kString;
      t.text = std::move(value);
      t.line = start_line;
      tokens_.push_back(std::move(t));
      line_ += CountNewlines(src_.substr(i, j - i));
      return j + 1;
    }
    for (std::string_view op : kOperators) {
      if (src_.substr(i, op.size()) != op) continue;
      if (op == "(" || op == "[" || op == "{") {
        brackets->push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets->empty()) return SyntaxError(line_, "unexpected '" + std::string(op) + "'");
        if (brackets->back() != op[0]) {
          return SyntaxError(line_,
                             "unexpected '" + std::string(op) + "', expected '" + std::string(1, brackets->back()) + "'");
        }
        brackets->pop_back();
      }
      Emit(TokenType::kOperator, std::string(op));
      return i + op.size();
    }
    std::string shown = static_cast<unsigned char>(c) < 0x80 ? std::string(1, c) : "non-ASCII character";
    return SyntaxError(line_, "unexpected char '" + shown + "' at " + std::to_string(i));
  }

  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> Tokenize(std::string_view source) {
  // jinja2 normalizes \r\n and \r to \n and drops one trailing newline.
  std::string normalized;
  normalized.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      normalized.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      normalized.push_back(source[i]);
    }
  }
  if (!normalized.empty() && normalized.back() == '\n') normalized.pop_back();
  Lexer lexer(normalized);
  return lexer.Run();
}

}  // namespace lserve::jinja
