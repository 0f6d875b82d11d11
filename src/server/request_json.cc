#include "server/request_json.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <variant>

#include "core/utf8.h"

namespace lserve::request_json {
namespace {

bool IsNumberChar(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// True when the number token would parse to +-inf. A token whose integer
// part has d characters and whose exponent is x is below 10^(d + x), so with
// d + x <= 300 it is finite without converting it: a body of a million
// "1e5" tokens costs one pass, and only the rare candidates reach strtod.
bool Overflows(std::string_view token) {
  const size_t e = token.find_first_of("eE");
  const std::string_view mantissa = token.substr(0, e);
  const size_t point = mantissa.find('.');
  const int64_t integer_chars = static_cast<int64_t>(point == std::string_view::npos ? mantissa.size() : point);
  int64_t exponent = 0;
  if (e != std::string_view::npos) {
    size_t i = e + 1;
    const bool negative = i < token.size() && token[i] == '-';
    if (i < token.size() && (token[i] == '-' || token[i] == '+')) ++i;
    for (; i < token.size() && token[i] >= '0' && token[i] <= '9'; ++i) {
      exponent = std::min<int64_t>(exponent * 10 + (token[i] - '0'), 1'000'000);  // saturates
    }
    if (negative) exponent = -exponent;
  }
  if (integer_chars + exponent <= 300) return false;
  const std::string copy(token);
  return std::isinf(std::strtod(copy.c_str(), nullptr));
}

ApiError NonFinite(std::string_view field) {
  if (field.empty()) {
    return InvalidRequest("", "The request body holds NaN, Infinity or a number too large for a double.");
  }
  const std::string name = Printable(field);
  return InvalidRequest(name, name + " must hold finite numbers: NaN, Infinity and numbers too large for a "
                                     "double (like 1e400) are not valid");
}

// nlohmann's what() starts with "[json.exception.parse_error.101] ".
std::string ParserMessage(const char* what) {
  std::string_view text(what);
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find("] ");
    if (close != std::string_view::npos) text.remove_prefix(close + 2);
  }
  if (text.size() > 200) text = text.substr(0, 200);
  return utf8::Sanitize(text);
}

}  // namespace

std::optional<ApiError> ScanBody(std::string_view body, int max_depth) {
  // A raw NUL is never valid JSON, and nlohmann's lexer takes it for the
  // end of input: "{...}\0garbage" would parse.
  if (body.find('\0') != std::string_view::npos) {
    return InvalidRequest("", "The request body is not valid JSON: it holds a NUL byte.");
  }
  int depth = 0;
  std::string_view last_top_string;  // the last string literal seen at depth 1
  std::string_view field;            // the top-level field whose value is being read
  size_t i = 0;
  const size_t n = body.size();
  while (i < n) {
    const char c = body[i];
    if (c == '"') {
      const size_t start = ++i;
      while (i < n && body[i] != '"') i += body[i] == '\\' ? 2 : 1;
      const size_t end = i < n ? i : n;
      if (depth == 1) last_top_string = body.substr(start, end - start);
      ++i;
      continue;
    }
    if (IsNumberChar(c)) {
      size_t j = i;
      bool has_exponent = false;
      for (; j < n && IsNumberChar(body[j]); ++j) has_exponent |= body[j] == 'e' || body[j] == 'E';
      // Without an exponent only a number of over 300 characters can overflow.
      if ((has_exponent || j - i > 300) && Overflows(body.substr(i, j - i))) return NonFinite(field);
      i = j;
      continue;
    }
    switch (c) {
      case '[':
      case '{':
        if (++depth > max_depth) {
          return InvalidRequest("", "The request body nests arrays and objects deeper than " +
                                        std::to_string(max_depth) + " levels.");
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      case ':':
        if (depth == 1) field = last_top_string;
        break;
      case ',':
        if (depth == 1) field = {};
        break;
      // Outside strings, valid JSON has no upper-case letters: these start
      // NaN or Infinity (Python's json.dumps writes both by default).
      case 'N':
      case 'I':
        return NonFinite(field);
      default:
        break;
    }
    ++i;
  }
  return std::nullopt;
}

std::variant<Json, ApiError> ParseBodyObject(std::string_view body, int max_depth) {
  if (auto error = ScanBody(body, max_depth)) return *std::move(error);
  Json parsed;
  try {
    parsed = Json::parse(body.begin(), body.end());
  } catch (const Json::exception& e) {
    return InvalidRequest("", "The request body is not valid JSON: " + ParserMessage(e.what()));
  } catch (...) {
    return InvalidRequest("", "The request body could not be parsed.");
  }
  if (!parsed.is_object()) {
    return InvalidRequest("", "The request body must be a JSON object, got " + std::string(TypeName(parsed)) + ".");
  }
  return parsed;
}

std::string Printable(std::string_view name) {
  if (name.size() > 64) {
    // Cut on a character boundary so that no partial character is replaced.
    name = name.substr(0, utf8::CompletePrefixLength(name.substr(0, 64)));
  }
  return utf8::Sanitize(name);
}

std::string_view TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a decimal number";
    default: return "an unsupported value";
  }
}

ApiError TypeError(std::string_view param, std::string_view what, const Json& v) {
  const std::string name = Printable(param);
  return InvalidRequest(name, name + " must be " + std::string(what) + ", got " + std::string(TypeName(v)));
}

ApiError UnknownField(std::string_view field) {
  const std::string name = Printable(field);
  return InvalidRequest(name, "Unrecognized request argument supplied: " + name);
}

ApiError Unsupported(std::string_view field, std::string_view detail) {
  const std::string name = Printable(field);
  std::string message = name + " is not supported by this server";
  if (!detail.empty()) {
    message += " (";
    message += detail;
    message += ')';
  }
  return InvalidRequest(name, message);
}

std::optional<ApiError> ReadBool(const Json& v, std::string_view param, bool* out) {
  if (!v.is_boolean()) return TypeError(param, "a boolean", v);
  *out = v.get<bool>();
  return std::nullopt;
}

std::optional<ApiError> ReadInt64(const Json& v, std::string_view param, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      const std::string name = Printable(param);
      return InvalidRequest(name, name + " is out of range, got " + std::to_string(u));
    }
    *out = static_cast<int64_t>(u);
    return std::nullopt;
  }
  if (!v.is_number_integer()) return TypeError(param, "an integer", v);
  *out = v.get<int64_t>();
  return std::nullopt;
}

std::optional<ApiError> ReadNumber(const Json& v, std::string_view param, double* out) {
  if (!v.is_number()) return TypeError(param, "a number", v);
  *out = v.get<double>();
  return std::nullopt;
}

std::optional<ApiError> ReadString(const Json& v, std::string_view param, std::string* out) {
  if (!v.is_string()) return TypeError(param, "a string", v);
  *out = v.get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ReadTokenId(const Json& v, std::string_view param, int32_t vocab_size, int32_t* out) {
  if (!v.is_number_integer()) return TypeError(param, "a token id (an integer)", v);
  // Unsigned values above INT64_MAX fail the range test below through the
  // is_number_unsigned branch.
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() < static_cast<uint64_t>(vocab_size)
                                               : v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab_size;
  if (!in_range) {
    const std::string name = Printable(param);
    const std::string id = v.is_number_unsigned() ? std::to_string(v.get<uint64_t>()) : std::to_string(v.get<int64_t>());
    return InvalidRequest(name, name + ": token id " + id + " is out of vocabulary (the vocabulary is [0, " +
                                    std::to_string(vocab_size) + "))");
  }
  *out = static_cast<int32_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace lserve::request_json
