// Methods of str, dict, list and tuple that templates call, the global
// functions transformers' environment provides, and Python's two string
// formatting mini-languages ("%" and str.format).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_text.h"

namespace lserve::jinja {
namespace {

using Params = std::vector<std::optional<Value>>;

constexpr std::string_view kStrMethods[] = {
    "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find", "format", "index", "isalnum", "isalpha",
    "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust",
    "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    "zfill",
};
constexpr std::string_view kDictSafe[] = {"items", "keys", "values", "get", "copy"};
constexpr std::string_view kDictUnsafe[] = {"pop", "popitem", "setdefault", "update", "clear"};
constexpr std::string_view kListSafe[] = {"count", "index", "copy"};
constexpr std::string_view kListUnsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort",
                                            "clear"};

template <size_t N>
bool In(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

bool Given(const Params& p, size_t i) { return p[i].has_value() && !p[i]->is_none(); }

Result<std::optional<std::string>> OptionalStrArg(const Renderer& r, const Params& p, size_t i,
                                                  std::string_view what) {
  if (!Given(p, i)) return std::optional<std::string>();
  if (!p[i]->is_string()) return r.Error(std::string(what) + " arg must be None or str");
  return std::optional<std::string>(p[i]->str());
}

// Byte offset of code point index `cp_index` (clamped as Python slices do).
size_t ByteOffsetOf(const std::vector<size_t>& offsets, int64_t cp_index) {
  int64_t n = static_cast<int64_t>(offsets.size()) - 1;
  if (cp_index < 0) cp_index = std::max<int64_t>(0, cp_index + n);
  if (cp_index > n) cp_index = n;
  return offsets[static_cast<size_t>(cp_index)];
}

// The optional `start` and `end` arguments (p[1], p[2]) of str.find,
// str.startswith and the like: code point indices (default: the whole
// string) and the byte offsets they select, clamped as Python slices are.
struct StartEndWindow {
  int64_t start;
  int64_t end;
  size_t begin_byte;
  size_t end_byte;
};

Result<StartEndWindow> StartEndArgs(const Renderer& r, const Params& p, const std::vector<size_t>& offsets) {
  StartEndWindow w{0, static_cast<int64_t>(offsets.size()) - 1, 0, 0};
  if (Given(p, 1)) {
    LSERVE_ASSIGN_OR_RETURN(w.start, IntArg(r, *p[1], "start"));
  }
  if (Given(p, 2)) {
    LSERVE_ASSIGN_OR_RETURN(w.end, IntArg(r, *p[2], "end"));
  }
  w.begin_byte = ByteOffsetOf(offsets, w.start);
  w.end_byte = ByteOffsetOf(offsets, w.end);
  return w;
}

int64_t CodePointIndexOf(const std::vector<size_t>& offsets, size_t byte_offset) {
  return static_cast<int64_t>(std::lower_bound(offsets.begin(), offsets.end(), byte_offset) - offsets.begin());
}

std::string Replace(const std::string& s, const std::string& old_text, const std::string& new_text, int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` before every character and at the end.
    std::vector<size_t> offsets = CodePointOffsets(s);
    int64_t inserted = 0;
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (count < 0 || inserted < count) {
        out += new_text;
        ++inserted;
      }
      out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
    }
    if (count < 0 || inserted < count) out += new_text;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old_text, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += new_text;
    pos = hit + old_text.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::vector<std::string> SplitOn(const std::string& s, const std::string& sep, int64_t max_split) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
    size_t hit = s.find(sep, pos);
    if (hit == std::string::npos) break;
    parts.push_back(s.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  parts.push_back(s.substr(pos));
  return parts;
}

std::vector<std::string> RSplitOn(const std::string& s, const std::string& sep, int64_t max_split) {
  std::vector<std::string> parts;
  size_t end = s.size();
  while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
    if (end < sep.size()) break;
    size_t hit = s.rfind(sep, end - sep.size());
    if (hit == std::string::npos) break;
    parts.push_back(s.substr(hit + sep.size(), end - hit - sep.size()));
    end = hit;
  }
  parts.push_back(s.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::string Pad(const std::string& s, int64_t width, char32_t fill, char align) {
  int64_t len = static_cast<int64_t>(CodePointCount(s));
  if (width <= len) return s;
  int64_t margin = width - len;
  std::string fill_text = EncodeCodePoints(std::u32string(1, fill));
  int64_t left = 0;
  if (align == '>') {
    left = margin;
  } else if (align == '^') {
    left = margin / 2 + (margin & width & 1);  // CPython's str.center rounding
  }
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill_text;
  out += s;
  for (int64_t i = left; i < margin; ++i) out += fill_text;
  return out;
}

bool StrPredicate(std::string_view name, const std::string& s) {
  std::u32string cps = DecodeCodePoints(s);
  if (name == "isascii") {
    return std::all_of(cps.begin(), cps.end(), [](char32_t c) { return c < 0x80; });
  }
  if (cps.empty()) return false;
  if (name == "isalnum") {
    return std::all_of(cps.begin(), cps.end(), [](char32_t c) { return IsPyAlpha(c) || IsPyDigit(c); });
  }
  if (name == "isalpha") return std::all_of(cps.begin(), cps.end(), IsPyAlpha);
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
    return std::all_of(cps.begin(), cps.end(), IsPyDigit);
  }
  if (name == "isspace") return std::all_of(cps.begin(), cps.end(), IsPySpace);
  bool any_cased = false;
  if (name == "islower" || name == "isupper") {
    for (char32_t c : cps) {
      if (IsPyUpper(c) || IsPyLower(c)) {
        any_cased = true;
        if (name == "islower" ? IsPyUpper(c) : IsPyLower(c)) return false;
      }
    }
    return any_cased;
  }
  if (name == "istitle") {
    bool previous_cased = false;
    for (char32_t c : cps) {
      if (IsPyUpper(c)) {
        if (previous_cased) return false;
        previous_cased = any_cased = true;
      } else if (IsPyLower(c)) {
        if (!previous_cased) return false;
        previous_cased = any_cased = true;
      } else {
        previous_cased = false;
      }
    }
    return any_cased;
  }
  return false;
}

Result<Value> StringList(Renderer& r, std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (std::string& part : parts) items.push_back(Value::String(std::move(part)));
  return r.MakeList(std::move(items));
}

// ---- str.format ----

// Python's format(value, spec) for the format-spec mini-language.
Result<std::string> FormatWithSpec(Renderer& r, const Value& v, const std::string& spec) {
  if (spec.empty()) return PyStr(v);
  std::u32string s = DecodeCodePoints(spec);
  size_t i = 0;
  char32_t fill = ' ';
  char align = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    fill = s[0];
    align = static_cast<char>(s[1]);
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    align = static_cast<char>(s[0]);
    i = 1;
  }
  char sign = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) sign = static_cast<char>(s[i++]);
  bool alternate = false;
  if (i < s.size() && s[i] == '#') {
    alternate = true;
    ++i;
  }
  if (i < s.size() && s[i] == '0') {
    if (align == 0) {
      fill = '0';
      align = '=';
    }
    ++i;
  }
  int64_t width = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    width = width * 10 + (s[i++] - '0');
    if (width > 100000) return ResourceExhausted("chat template format width too large");
  }
  char grouping = 0;
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) grouping = static_cast<char>(s[i++]);
  int64_t precision = -1;
  if (i < s.size() && s[i] == '.') {
    ++i;
    precision = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      precision = precision * 10 + (s[i++] - '0');
      if (precision > 1000) return ResourceExhausted("chat template format precision too large");
    }
  }
  char type = 0;
  if (i < s.size()) type = static_cast<char>(s[i++]);
  if (i != s.size()) return r.Error("Invalid format specifier");

  std::string body;
  if (v.is_string() && (type == 0 || type == 's')) {
    if (sign || grouping || align == '=') return r.Error("Sign not allowed in string format specifier");
    body = v.str();
    if (precision >= 0) body = EncodeCodePoints(DecodeCodePoints(body).substr(0, static_cast<size_t>(precision)));
    return Pad(body, width, fill, align ? align : '<');
  }
  if (!v.is_number()) {
    return r.Error("unsupported format string passed to " + std::string(TypeName(v)) + ".__format__");
  }
  std::string digits;
  bool negative = false;
  char buf[1100];
  if (v.is_integral() && (type == 0 || type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' ||
                          type == 'n' || type == 'c')) {
    if (type == 'c') return PyStr(Value::String(EncodeCodePoints(std::u32string(1, static_cast<char32_t>(v.int_value())))));
    int64_t x = v.int_value();
    negative = x < 0;
    uint64_t mag = negative ? static_cast<uint64_t>(-(x + 1)) + 1 : static_cast<uint64_t>(x);
    int base = type == 'x' || type == 'X' ? 16 : type == 'o' ? 8 : type == 'b' ? 2 : 10;
    const char* alphabet = type == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
      digits.insert(digits.begin(), alphabet[mag % static_cast<uint64_t>(base)]);
      mag /= static_cast<uint64_t>(base);
    } while (mag != 0);
    if (grouping) {
      size_t group = base == 10 ? 3 : 4;
      std::string grouped;
      for (size_t k = 0; k < digits.size(); ++k) {
        if (k > 0 && (digits.size() - k) % group == 0) grouped.push_back(grouping);
        grouped.push_back(digits[k]);
      }
      digits = grouped;
    }
    if (alternate && base != 10) digits = std::string("0") + (type == 'X' ? 'X' : type) + digits;
  } else {
    double x = v.float_value();
    negative = std::signbit(x) && !std::isnan(x);
    double mag = std::fabs(x);
    if (type == 0 && precision < 0) {
      digits = PyFloatRepr(mag);
    } else {
      char t = type == 0 ? 'g' : type == 'n' ? 'g' : type;
      if (t != 'e' && t != 'E' && t != 'f' && t != 'F' && t != 'g' && t != 'G' && t != '%') {
        return r.Error(std::string("Unknown format code '") + type + "' for object of type '" +
                       std::string(TypeName(v)) + "'");
      }
      int prec = static_cast<int>(precision < 0 ? 6 : precision);
      if (t == '%') {
        std::snprintf(buf, sizeof(buf), alternate ? "%#.*f" : "%.*f", prec, mag * 100);
        digits = std::string(buf) + "%";
      } else {
        char fmt[8] = {'%', 0};
        size_t k = 1;
        if (alternate) fmt[k++] = '#';
        fmt[k++] = '.';
        fmt[k++] = '*';
        fmt[k++] = t;
        std::snprintf(buf, sizeof(buf), fmt, prec, mag);
        digits = buf;
        if (type == 0 && digits.find_first_of(".eEn") == std::string::npos) digits += ".0";
      }
    }
    if (std::isinf(mag)) digits = (type == 'E' || type == 'F' || type == 'G') ? "INF" : "inf";
    if (std::isnan(x)) digits = (type == 'E' || type == 'F' || type == 'G') ? "NAN" : "nan";
    if (grouping) {
      size_t end = digits.find_first_of(".eE%");
      if (end == std::string::npos) end = digits.size();
      std::string int_part = digits.substr(0, end);
      std::string grouped;
      for (size_t k = 0; k < int_part.size(); ++k) {
        if (k > 0 && (int_part.size() - k) % 3 == 0) grouped.push_back(grouping);
        grouped.push_back(int_part[k]);
      }
      digits = grouped + digits.substr(end);
    }
  }
  std::string sign_text = negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
  if (align == '=') {
    int64_t len = static_cast<int64_t>(sign_text.size() + CodePointCount(digits));
    std::string fill_text = EncodeCodePoints(std::u32string(1, fill));
    std::string padding;
    for (int64_t k = len; k < width; ++k) padding += fill_text;
    return sign_text + padding + digits;
  }
  return Pad(sign_text + digits, width, fill, align ? align : '>');
}

Result<Value> StrFormat(Renderer& r, const std::string& format, const CallArgs& args) {
  std::string out;
  size_t i = 0;
  int auto_index = 0;
  bool used_auto = false;
  bool used_manual = false;
  while (i < format.size()) {
    char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out.push_back('}');
        i += 2;
        continue;
      }
      return r.Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out.push_back('{');
      i += 2;
      continue;
    }
    size_t close = format.find('}', i + 1);
    if (close == std::string::npos) return r.Error("expected '}' before end of string");
    std::string field = format.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string::npos) return r.Error("nested replacement fields are not supported");
    i = close + 1;
    std::string spec;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    char conversion = 0;
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size()) return r.Error("expected ':' after conversion specifier");
      conversion = field[bang + 1];
      field = field.substr(0, bang);
    }
    size_t name_end = field.find_first_of(".[");
    std::string head = field.substr(0, name_end);
    Value value;
    if (head.empty() || std::all_of(head.begin(), head.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t index;
      if (head.empty()) {
        if (used_manual) return r.Error("cannot switch from manual field specification to automatic field numbering");
        used_auto = true;
        index = static_cast<size_t>(auto_index++);
      } else {
        if (used_auto) return r.Error("cannot switch from automatic field numbering to manual field specification");
        used_manual = true;
        index = static_cast<size_t>(std::strtoull(head.c_str(), nullptr, 10));
      }
      if (index >= args.positional.size()) return r.Error("Replacement index " + std::to_string(index) + " out of range");
      value = args.positional[index];
    } else {
      const Value* kw = args.Keyword(head);
      if (kw == nullptr) return r.Error("KeyError: '" + head + "'");
      value = *kw;
    }
    // Attribute and index accessors go through the sandbox, as jinja2's
    // SandboxedFormatter does.
    size_t k = name_end == std::string::npos ? field.size() : name_end;
    while (k < field.size()) {
      if (field[k] == '.') {
        size_t end = field.find_first_of(".[", k + 1);
        std::string attr = field.substr(k + 1, end == std::string::npos ? std::string::npos : end - k - 1);
        LSERVE_ASSIGN_OR_RETURN(value, r.GetAttr(value, attr));
        k = end == std::string::npos ? field.size() : end;
      } else {
        size_t end = field.find(']', k);
        if (end == std::string::npos) return r.Error("Missing ']' in format string");
        std::string key = field.substr(k + 1, end - k - 1);
        Value key_value = Value::String(key);
        if (!key.empty() && std::all_of(key.begin(), key.end(), [](char d) { return d >= '0' && d <= '9'; })) {
          key_value = Value::Int(std::strtoll(key.c_str(), nullptr, 10));
        }
        LSERVE_ASSIGN_OR_RETURN(value, r.GetItem(value, key_value));
        k = end + 1;
      }
    }
    if (conversion == 'r' || conversion == 'a') {
      value = Value::String(PyRepr(value));
    } else if (conversion == 's') {
      value = Value::String(PyStr(value));
    } else if (conversion != 0) {
      return r.Error(std::string("Unknown conversion specifier ") + conversion);
    }
    LSERVE_ASSIGN_OR_RETURN(std::string piece, FormatWithSpec(r, value, spec));
    out += piece;
    if (out.size() > r.limits().max_value_bytes) return r.ChargeBytes(out.size());
  }
  return r.MakeString(std::move(out));
}

// ---- methods ----

Result<Value> StrMethod(Renderer& r, const std::string& s, std::string_view name, const CallArgs& args) {
  Params p;
  auto bind = [&](std::initializer_list<std::string_view> names, size_t required) {
    return BindParams(r, name, args, names, required, &p);
  };
  auto str_result = [&](std::string out) { return r.MakeString(std::move(out)); };
  auto str_arg = [&](size_t i, std::string_view what) -> Result<std::string> {
    if (!p[i]->is_string()) {
      return r.Error(std::string(what) + " must be str, not " + std::string(TypeName(*p[i])));
    }
    return p[i]->str();
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    LSERVE_RETURN_IF_ERROR(bind({"chars"}, 0));
    LSERVE_ASSIGN_OR_RETURN(std::optional<std::string> chars, OptionalStrArg(r, p, 0, name));
    StripSide side = name == "strip" ? StripSide::kBoth : name == "lstrip" ? StripSide::kLeft : StripSide::kRight;
    return str_result(PyStrip(s, side, chars ? &*chars : nullptr));
  }
  if (name == "split" || name == "rsplit") {
    LSERVE_RETURN_IF_ERROR(bind({"sep", "maxsplit"}, 0));
    LSERVE_ASSIGN_OR_RETURN(std::optional<std::string> sep, OptionalStrArg(r, p, 0, "sep"));
    int64_t max_split = -1;
    if (Given(p, 1)) {
      LSERVE_ASSIGN_OR_RETURN(max_split, IntArg(r, *p[1], "maxsplit"));
    }
    LSERVE_RETURN_IF_ERROR(r.ChargeBytes(s.size() * 2));
    if (!sep) {
      return StringList(r, name == "split" ? PySplitWhitespace(s, max_split) : PyRSplitWhitespace(s, max_split));
    }
    if (sep->empty()) return r.Error("empty separator");
    return StringList(r, name == "split" ? SplitOn(s, *sep, max_split) : RSplitOn(s, *sep, max_split));
  }
  if (name == "splitlines") {
    LSERVE_RETURN_IF_ERROR(bind({"keepends"}, 0));
    if (Given(p, 0) && Truthy(*p[0])) return r.Error("splitlines(keepends=True) is not supported");
    return StringList(r, PySplitLines(s));
  }
  if (name == "startswith" || name == "endswith") {
    LSERVE_RETURN_IF_ERROR(bind({"prefix", "start", "end"}, 1));
    std::string_view view = s;
    if (Given(p, 1) || Given(p, 2)) {
      std::vector<size_t> offsets = CodePointOffsets(s);
      const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
      LSERVE_ASSIGN_OR_RETURN(StartEndWindow w, StartEndArgs(r, p, offsets));
      if (w.start > n || (w.start >= 0 && w.end >= 0 && w.start > w.end) || w.begin_byte > w.end_byte) {
        return Value::Bool(false);
      }
      view = view.substr(w.begin_byte, w.end_byte - w.begin_byte);
    }
    std::vector<std::string> candidates;
    if (p[0]->is_string()) {
      candidates.push_back(p[0]->str());
    } else if (p[0]->is_tuple()) {
      for (const Value& item : p[0]->items()) {
        if (!item.is_string()) return r.Error("tuple for " + std::string(name) + " must only contain str");
        candidates.push_back(item.str());
      }
    } else {
      return r.Error(std::string(name) + " first arg must be str or a tuple of str, not " +
                     std::string(TypeName(*p[0])));
    }
    for (const std::string& c : candidates) {
      bool hit = name == "startswith" ? view.substr(0, c.size()) == c
                                      : (view.size() >= c.size() && view.substr(view.size() - c.size()) == c);
      if (hit) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "upper" || name == "lower" || name == "casefold" || name == "title" || name == "capitalize" ||
      name == "swapcase") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (name == "upper") return str_result(PyUpper(s));
    if (name == "lower" || name == "casefold") return str_result(PyLower(s));
    if (name == "title") return str_result(PyTitle(s));
    if (name == "capitalize") return str_result(PyCapitalize(s));
    return str_result(PySwapCase(s));
  }
  if (name == "replace") {
    LSERVE_RETURN_IF_ERROR(bind({"old", "new", "count"}, 2));
    LSERVE_ASSIGN_OR_RETURN(std::string old_text, str_arg(0, "replace() argument 1"));
    LSERVE_ASSIGN_OR_RETURN(std::string new_text, str_arg(1, "replace() argument 2"));
    int64_t count = -1;
    if (Given(p, 2)) {
      LSERVE_ASSIGN_OR_RETURN(count, IntArg(r, *p[2], "count"));
    }
    // Bound the result before building it: each match can grow the text.
    size_t matches = old_text.empty() ? CodePointCount(s) + 1 : s.size() / old_text.size();
    if (count >= 0) matches = std::min<size_t>(matches, static_cast<size_t>(count));
    if (new_text.size() > old_text.size() && matches > 0 &&
        (new_text.size() - old_text.size()) > r.limits().max_value_bytes / matches) {
      return r.ChargeBytes(r.limits().max_value_bytes + 1);
    }
    return str_result(Replace(s, old_text, new_text, count));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    LSERVE_RETURN_IF_ERROR(bind({"sub", "start", "end"}, 1));
    LSERVE_ASSIGN_OR_RETURN(std::string sub, str_arg(0, "substring"));
    std::vector<size_t> offsets = CodePointOffsets(s);
    LSERVE_ASSIGN_OR_RETURN(StartEndWindow w, StartEndArgs(r, p, offsets));
    const size_t b = w.begin_byte;
    const size_t e = w.end_byte;
    if (name == "count") {
      if (b > e) return Value::Int(0);
      std::string_view window = std::string_view(s).substr(b, e - b);
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(window)) + 1);
      int64_t hits = 0;
      for (size_t pos = window.find(sub); pos != std::string_view::npos; pos = window.find(sub, pos + sub.size())) {
        ++hits;
      }
      return Value::Int(hits);
    }
    size_t hit = std::string::npos;
    if (b <= e && e - b >= sub.size()) {
      std::string_view window = std::string_view(s).substr(b, e - b);
      hit = (name == "find" || name == "index") ? window.find(sub) : window.rfind(sub);
    }
    if (hit == std::string::npos) {
      if (name == "index" || name == "rindex") return r.Error("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(CodePointIndexOf(offsets, b + hit));
  }
  if (name == "join") {
    LSERVE_RETURN_IF_ERROR(bind({"iterable"}, 1));
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(*p[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return r.Error("sequence item " + std::to_string(i) + ": expected str instance, " +
                       std::string(TypeName(items[i])) + " found");
      }
      if (i > 0) out += s;
      out += items[i].str();
      if (out.size() > r.limits().max_value_bytes) return r.ChargeBytes(out.size());
    }
    return str_result(std::move(out));
  }
  if (name == "format") return StrFormat(r, s, args);
  if (name == "expandtabs") {
    LSERVE_RETURN_IF_ERROR(bind({"tabsize"}, 0));
    int64_t tabsize = 8;
    if (Given(p, 0)) {
      LSERVE_ASSIGN_OR_RETURN(tabsize, IntArg(r, *p[0], "tabsize"));
    }
    if (tabsize > 1024) return r.Error("tabsize too large");
    std::u32string out;
    int64_t column = 0;
    for (char32_t c : DecodeCodePoints(s)) {
      if (c == '\t') {
        int64_t spaces = tabsize > 0 ? tabsize - column % tabsize : 0;
        out.append(static_cast<size_t>(spaces), U' ');
        column += spaces;
      } else {
        out.push_back(c);
        column = (c == '\n' || c == '\r') ? 0 : column + 1;
      }
      if (out.size() > r.limits().max_value_bytes) return r.ChargeBytes(out.size());
    }
    return str_result(EncodeCodePoints(out));
  }
  if (name == "isalnum" || name == "isalpha" || name == "isascii" || name == "isdecimal" || name == "isdigit" ||
      name == "islower" || name == "isnumeric" || name == "isspace" || name == "istitle" || name == "isupper") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return Value::Bool(StrPredicate(name, s));
  }
  if (name == "partition" || name == "rpartition") {
    LSERVE_RETURN_IF_ERROR(bind({"sep"}, 1));
    LSERVE_ASSIGN_OR_RETURN(std::string sep, str_arg(0, "sep"));
    if (sep.empty()) return r.Error("empty separator");
    size_t hit = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (hit == std::string::npos) {
      if (name == "partition") {
        parts = {Value::String(s), Value::String(""), Value::String("")};
      } else {
        parts = {Value::String(""), Value::String(""), Value::String(s)};
      }
    } else {
      parts = {Value::String(s.substr(0, hit)), Value::String(sep), Value::String(s.substr(hit + sep.size()))};
    }
    return r.MakeList(std::move(parts), SequenceKind::kTuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    LSERVE_RETURN_IF_ERROR(bind({"affix"}, 1));
    LSERVE_ASSIGN_OR_RETURN(std::string affix, str_arg(0, "argument"));
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return str_result(s.substr(affix.size()));
    if (name == "removesuffix" && !affix.empty() && s.size() >= affix.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return str_result(s.substr(0, s.size() - affix.size()));
    }
    return str_result(s);
  }
  if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
    LSERVE_RETURN_IF_ERROR(name == "zfill" ? bind({"width"}, 1) : bind({"width", "fillchar"}, 1));
    LSERVE_ASSIGN_OR_RETURN(int64_t width, IntArg(r, *p[0], "width"));
    if (width > static_cast<int64_t>(r.limits().max_value_bytes)) return r.ChargeBytes(r.limits().max_value_bytes + 1);
    if (name == "zfill") {
      std::string body = s;
      std::string sign;
      if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
        sign = body.substr(0, 1);
        body = body.substr(1);
      }
      int64_t len = static_cast<int64_t>(CodePointCount(s));
      if (width <= len) return str_result(s);
      return str_result(sign + std::string(static_cast<size_t>(width - len), '0') + body);
    }
    char32_t fill = ' ';
    if (Given(p, 1)) {
      std::u32string f = p[1]->is_string() ? DecodeCodePoints(p[1]->str()) : std::u32string();
      if (f.size() != 1) return r.Error("The fill character must be exactly one character long");
      fill = f[0];
    }
    char align = name == "center" ? '^' : name == "ljust" ? '<' : '>';
    return str_result(Pad(s, width, fill, align));
  }
  return r.Error("'str' object has no attribute '" + std::string(name) + "'");
}

Result<Value> DictMethod(Renderer& r, const Value& d, std::string_view name, const CallArgs& args) {
  Params p;
  const Dict& dict = d.dict();
  if (name == "items" || name == "keys" || name == "values") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {}, 0, &p));
    std::vector<Value> out;
    out.reserve(dict.size());
    for (const auto& [key, value] : dict.entries()) {
      if (name == "items") {
        out.push_back(Value::Tuple({key, value}));
      } else {
        out.push_back(name == "keys" ? key : value);
      }
    }
    SequenceKind kind = name == "items" ? SequenceKind::kDictItems
                        : name == "keys" ? SequenceKind::kDictKeys
                                         : SequenceKind::kDictValues;
    return r.MakeList(std::move(out), kind);
  }
  if (name == "get") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"key", "default"}, 1, &p));
    if (!HashKey(*p[0])) return r.Error("unhashable type: '" + std::string(TypeName(*p[0])) + "'");
    if (const Value* v = dict.Find(*p[0])) return *v;
    return p[1] ? *p[1] : Value::None();
  }
  if (name == "copy") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {}, 0, &p));
    return d;
  }
  return r.Error("'dict' object has no attribute '" + std::string(name) + "'");
}

Result<Value> SequenceMethod(Renderer& r, const Value& seq, std::string_view name, const CallArgs& args) {
  Params p;
  const std::vector<Value>& items = seq.items();
  if (name == "count") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"value"}, 1, &p));
    LSERVE_RETURN_IF_ERROR(r.Step(items.size()));
    return Value::Int(std::count_if(items.begin(), items.end(), [&](const Value& v) { return PyEquals(v, *p[0]); }));
  }
  if (name == "index") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"value", "start", "stop"}, 1, &p));
    LSERVE_RETURN_IF_ERROR(r.Step(items.size()));
    int64_t n = static_cast<int64_t>(items.size());
    int64_t start = 0;
    int64_t stop = n;
    if (Given(p, 1)) {
      LSERVE_ASSIGN_OR_RETURN(start, IntArg(r, *p[1], "start"));
    }
    if (Given(p, 2)) {
      LSERVE_ASSIGN_OR_RETURN(stop, IntArg(r, *p[2], "stop"));
    }
    if (start < 0) start = std::max<int64_t>(0, start + n);
    if (stop < 0) stop = std::max<int64_t>(0, stop + n);
    for (int64_t i = start; i < std::min(stop, n); ++i) {
      if (PyEquals(items[static_cast<size_t>(i)], *p[0])) return Value::Int(i);
    }
    return r.Error(PyRepr(*p[0]) + " is not in " + std::string(TypeName(seq)));
  }
  if (name == "copy") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {}, 0, &p));
    return seq;
  }
  return r.Error("'" + std::string(TypeName(seq)) + "' object has no attribute '" + std::string(name) + "'");
}

// dict(...) / namespace(...): a mapping or an iterable of pairs, then keywords.
Result<Dict> BuildDict(Renderer& r, const CallArgs& args, std::string_view function) {
  if (args.positional.size() > 1) {
    return r.Error(std::string(function) + " expected at most 1 argument, got " +
                   std::to_string(args.positional.size()));
  }
  Dict d;
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      d = source.dict();
    } else {
      LSERVE_ASSIGN_OR_RETURN(std::vector<Value> pairs, r.Iterate(source));
      for (size_t i = 0; i < pairs.size(); ++i) {
        LSERVE_ASSIGN_OR_RETURN(std::vector<Value> kv, r.Iterate(pairs[i]));
        if (kv.size() != 2) {
          return r.Error("dictionary update sequence element #" + std::to_string(i) + " has length " +
                         std::to_string(kv.size()) + "; 2 is required");
        }
        Status set = d.Set(kv[0], kv[1]);
        if (!set.ok()) return r.Error(set.message());
      }
    }
  }
  for (const auto& [key, value] : args.keywords) LSERVE_RETURN_IF_ERROR(d.Set(Value::String(key), value));
  LSERVE_RETURN_IF_ERROR(r.ChargeBytes(d.size() * 2 * sizeof(Value)));
  if (d.depth() > r.limits().max_value_depth) return r.Error("value nested too deeply");
  return d;
}

Status CheckNamespaceName(const Renderer& r, const Value& key) {
  if (key.is_string() && !key.str().empty() && key.str()[0] == '_') {
    return r.Error("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                   key.str() + "'. Please rename the attribute.");
  }
  return Status::Ok();
}

Result<std::string> StrftimeUtc(const Renderer& r, const std::string& format, std::time_t now) {
  // Python's datetime.strftime handles %f, %z and %Z itself (a naive
  // datetime has no zone); everything else goes to the C library.
  std::string expanded;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      char c = format[i + 1];
      if (c == 'f') {
        expanded += "000000";
        ++i;
        continue;
      }
      if (c == 'z' || c == 'Z') {
        ++i;
        continue;
      }
      expanded.push_back('%');
      expanded.push_back(c);
      ++i;
      continue;
    }
    expanded.push_back(format[i]);
  }
  if (expanded.size() > 4096) return r.Error("strftime format too long");
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::string out(expanded.size() * 16 + 64, '\0');
  size_t n = std::strftime(out.data(), out.size(), expanded.c_str(), &tm);
  if (n == 0 && !expanded.empty()) return std::string();
  out.resize(n);
  return out;
}

}  // namespace

MethodSafety ClassifyMethod(const Value& receiver, std::string_view name) {
  switch (receiver.kind()) {
    case Value::Kind::kString: return In(kStrMethods, name) ? MethodSafety::kSafe : MethodSafety::kNotAMethod;
    case Value::Kind::kDict:
      if (In(kDictSafe, name) || name == "fromkeys") return MethodSafety::kSafe;
      return In(kDictUnsafe, name) ? MethodSafety::kUnsafe : MethodSafety::kNotAMethod;
    case Value::Kind::kSequence:
      if (receiver.is_list()) {
        if (In(kListSafe, name)) return MethodSafety::kSafe;
        return In(kListUnsafe, name) ? MethodSafety::kUnsafe : MethodSafety::kNotAMethod;
      }
      if (receiver.is_tuple() || receiver.is_range()) {
        return (name == "count" || name == "index") ? MethodSafety::kSafe : MethodSafety::kNotAMethod;
      }
      return MethodSafety::kNotAMethod;
    default: return MethodSafety::kNotAMethod;
  }
}

Result<Value> CallMethod(Renderer& r, const Value& receiver, std::string_view name, const CallArgs& args) {
  LSERVE_RETURN_IF_ERROR(r.Step());
  if (ClassifyMethod(receiver, name) != MethodSafety::kSafe) {
    return r.Error("access to attribute '" + std::string(name) + "' of '" + std::string(TypeName(receiver)) +
                   "' object is unsafe.");
  }
  if (receiver.is_string()) return StrMethod(r, receiver.str(), name, args);
  if (receiver.is_dict()) {
    if (name == "fromkeys") {
      Callable fromkeys;
      fromkeys.builtin = BuiltinFunction::kDictFromKeys;
      return CallGlobalFunction(r, fromkeys, args);
    }
    return DictMethod(r, receiver, name, args);
  }
  return SequenceMethod(r, receiver, name, args);
}

Result<Value> CallGlobalFunction(Renderer& r, const Callable& fn, const CallArgs& args) {
  LSERVE_RETURN_IF_ERROR(r.Step());
  switch (fn.builtin) {
    case BuiltinFunction::kRange: {
      if (!args.keywords.empty()) return r.Error("range() takes no keyword arguments");
      if (args.positional.empty() || args.positional.size() > 3) {
        return r.Error("range expected at most 3 arguments, got " + std::to_string(args.positional.size()));
      }
      int64_t bounds[3] = {0, 0, 1};
      for (size_t i = 0; i < args.positional.size(); ++i) {
        LSERVE_ASSIGN_OR_RETURN(bounds[i], IntArg(r, args.positional[i], "range"));
      }
      int64_t start = args.positional.size() == 1 ? 0 : bounds[0];
      int64_t stop = args.positional.size() == 1 ? bounds[0] : bounds[1];
      int64_t step = args.positional.size() == 3 ? bounds[2] : 1;
      if (step == 0) return r.Error("range() arg 3 must not be zero");
      // jinja2's sandbox refuses ranges longer than MAX_RANGE.
      constexpr int64_t kMaxRange = 100000;
      __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
      __int128 length = span <= 0 ? 0 : (span + (step > 0 ? step : -step) - 1) / (step > 0 ? step : -step);
      if (length > kMaxRange) {
        return ResourceExhausted("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      }
      LSERVE_RETURN_IF_ERROR(r.ChargeBytes(static_cast<size_t>(length) * sizeof(Value)));
      return Value::Range(start, stop, step);
    }
    case BuiltinFunction::kNamespace: {
      LSERVE_ASSIGN_OR_RETURN(Dict attrs, BuildDict(r, args, "namespace"));
      for (const auto& entry : attrs.entries()) LSERVE_RETURN_IF_ERROR(CheckNamespaceName(r, entry.first));
      auto ns = std::make_shared<Namespace>();
      ns->attrs = std::move(attrs);
      r.Track(ns);
      return Value::FromNamespace(std::move(ns));
    }
    case BuiltinFunction::kDict: {
      LSERVE_ASSIGN_OR_RETURN(Dict d, BuildDict(r, args, "dict"));
      return Value::FromDict(std::move(d));
    }
    case BuiltinFunction::kDictFromKeys: {
      if (args.positional.empty() || args.positional.size() > 2) return r.Error("fromkeys expected 1 or 2 arguments");
      LSERVE_ASSIGN_OR_RETURN(std::vector<Value> keys, r.Iterate(args.positional[0]));
      Value fill = args.positional.size() == 2 ? args.positional[1] : Value::None();
      Dict d;
      for (Value& key : keys) {
        Status set = d.Set(std::move(key), fill);
        if (!set.ok()) return r.Error(set.message());
      }
      LSERVE_RETURN_IF_ERROR(r.ChargeBytes(d.size() * 2 * sizeof(Value)));
      if (d.depth() > r.limits().max_value_depth) return r.Error("value nested too deeply");
      return Value::FromDict(std::move(d));
    }
    case BuiltinFunction::kRaiseException: {
      Params p;
      LSERVE_RETURN_IF_ERROR(BindParams(r, "raise_exception", args, {"message"}, 1, &p));
      // The template's own message, unprefixed: this is the error users see.
      return InvalidArgument(PyStr(*p[0]));
    }
    case BuiltinFunction::kStrftimeNow: {
      Params p;
      LSERVE_RETURN_IF_ERROR(BindParams(r, "strftime_now", args, {"format"}, 1, &p));
      if (!p[0]->is_string()) return r.Error("strftime() argument 1 must be str");
      LSERVE_ASSIGN_OR_RETURN(std::string text, StrftimeUtc(r, p[0]->str(), r.now()));
      return r.MakeString(std::move(text));
    }
    case BuiltinFunction::kLoopCycle: {
      if (args.positional.empty()) return r.Error("no items for cycling given");
      const LoopState& loop = fn.bound[0].loop();
      return args.positional[loop.index0 % args.positional.size()];
    }
    case BuiltinFunction::kLoopChanged: {
      LoopState& loop = fn.bound[0].loop();
      LSERVE_ASSIGN_OR_RETURN(Value current, r.MakeList(args.positional, SequenceKind::kTuple));
      if (!loop.has_changed_value || !PyEquals(loop.changed_value, current)) {
        loop.has_changed_value = true;
        loop.changed_value = std::move(current);
        return Value::Bool(true);
      }
      return Value::Bool(false);
    }
  }
  return r.Error("unknown function");
}

Result<Value> PercentFormat(Renderer& r, const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const Dict* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    positional.push_back(args);
    if (args.is_dict()) mapping = &args.dict();
  }
  size_t next_arg = 0;
  bool used_mapping = false;
  std::string out;
  char buf[1200];
  auto take = [&]() -> Result<Value> {
    if (next_arg >= positional.size()) return r.Error("not enough arguments for format string");
    return positional[next_arg++];
  };
  size_t i = 0;
  while (i < format.size()) {
    char c = format[i];
    if (c != '%') {
      out.push_back(c);
      ++i;
      continue;
    }
    ++i;
    if (i >= format.size()) return r.Error("incomplete format");
    Value value;
    bool have_value = false;
    if (format[i] == '(') {
      size_t close = format.find(')', i);
      if (close == std::string::npos) return r.Error("incomplete format key");
      if (mapping == nullptr) return r.Error("format requires a mapping");
      std::string key = format.substr(i + 1, close - i - 1);
      const Value* found = mapping->Find(key);
      if (found == nullptr) return r.Error("KeyError: '" + key + "'");
      value = *found;
      have_value = true;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string_view::npos) {
      flags.push_back(format[i++]);
    }
    int64_t width = -1;
    if (i < format.size() && format[i] == '*') {
      LSERVE_ASSIGN_OR_RETURN(Value w, take());
      LSERVE_ASSIGN_OR_RETURN(width, IntArg(r, w, "* wants int"));
      if (width > 100000 || width < -100000) return ResourceExhausted("chat template format width too large");
      if (width < 0) {
        flags.push_back('-');
        width = -width;
      }
      ++i;
    } else {
      while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
        width = std::max<int64_t>(width, 0) * 10 + (format[i++] - '0');
        if (width > 100000) return ResourceExhausted("chat template format width too large");
      }
    }
    int64_t precision = -1;
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      if (i < format.size() && format[i] == '*') {
        LSERVE_ASSIGN_OR_RETURN(Value pr, take());
        LSERVE_ASSIGN_OR_RETURN(precision, IntArg(r, pr, "* wants int"));
        if (precision > 1000) return ResourceExhausted("chat template format precision too large");
        ++i;
      } else {
        while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
          precision = precision * 10 + (format[i++] - '0');
          if (precision > 1000) return ResourceExhausted("chat template format precision too large");
        }
      }
    }
    while (i < format.size() && (format[i] == 'l' || format[i] == 'h' || format[i] == 'L')) ++i;
    if (i >= format.size()) return r.Error("incomplete format");
    char conv = format[i++];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_value) {
      LSERVE_ASSIGN_OR_RETURN(value, take());
    }
    bool left = flags.find('-') != std::string::npos;
    std::string piece;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        piece = conv == 's' ? PyStr(value) : PyRepr(value);
        if (precision >= 0) {
          piece = EncodeCodePoints(DecodeCodePoints(piece).substr(0, static_cast<size_t>(precision)));
        }
        break;
      }
      case 'c': {
        if (value.is_integral()) {
          piece = EncodeCodePoints(std::u32string(1, static_cast<char32_t>(value.int_value())));
        } else if (value.is_string() && CodePointCount(value.str()) == 1) {
          piece = value.str();
        } else {
          return r.Error("%c requires an int or a unicode character");
        }
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        if (!value.is_number()) {
          return r.Error(std::string("%") + conv + " format: a real number is required, not " +
                         std::string(TypeName(value)));
        }
        int64_t n = value.is_float() ? static_cast<int64_t>(value.float_value()) : value.int_value();
        std::string c_flags = flags;
        bool octal_prefix = conv == 'o' && c_flags.find('#') != std::string::npos;
        if (octal_prefix) c_flags.erase(c_flags.find('#'), 1);  // C writes "010", Python "0o10"
        std::string fmt = "%" + c_flags + (precision >= 0 ? ".*" : "") + "ll" +
                          std::string(1, conv == 'u' || conv == 'i' ? 'd' : conv);
        if (precision >= 0) {
          std::snprintf(buf, sizeof(buf), fmt.c_str(), static_cast<int>(precision), static_cast<long long>(n));
        } else {
          std::snprintf(buf, sizeof(buf), fmt.c_str(), static_cast<long long>(n));
        }
        piece = buf;
        if (octal_prefix) piece.insert(piece.find_first_of("0123456789"), "0o");
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!value.is_number()) {
          return r.Error("must be real number, not " + std::string(TypeName(value)));
        }
        std::string fmt = "%" + flags + ".*" + std::string(1, conv);
        std::snprintf(buf, sizeof(buf), fmt.c_str(), static_cast<int>(precision < 0 ? 6 : precision),
                      value.float_value());
        piece = buf;
        break;
      }
      default:
        return r.Error(std::string("unsupported format character '") + conv + "'");
    }
    if (width > 0) {
      char pad = (flags.find('0') != std::string::npos && !left && conv != 's' && conv != 'r') ? '0' : ' ';
      int64_t len = static_cast<int64_t>(CodePointCount(piece));
      if (len < width) {
        std::string padding(static_cast<size_t>(width - len), pad);
        if (left) {
          piece += std::string(static_cast<size_t>(width - len), ' ');
        } else if (pad == '0' && !piece.empty() && (piece[0] == '-' || piece[0] == '+' || piece[0] == ' ')) {
          piece.insert(1, padding);
        } else {
          piece.insert(0, padding);
        }
      }
    }
    out += piece;
    if (out.size() > r.limits().max_value_bytes) return r.ChargeBytes(out.size());
  }
  // CPython only complains about unused arguments when they are not a
  // mapping-like object (anything subscriptable but a tuple or str).
  const bool mapping_like = args.is_dict() || (args.is_sequence() && !args.is_tuple());
  if (!used_mapping && !mapping_like && next_arg < positional.size()) {
    return r.Error("not all arguments converted during string formatting");
  }
  return r.MakeString(std::move(out));
}

}  // namespace lserve::jinja
