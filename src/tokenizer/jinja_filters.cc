// jinja2 filters and tests (jinja2/filters.py, jinja2/tests.py), with the
// `tojson` that transformers installs in place of jinja2's own.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <unordered_set>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_json.h"
#include "tokenizer/jinja_text.h"

namespace lserve::jinja {
namespace {

using Params = std::vector<std::optional<Value>>;

constexpr std::string_view kFilterNames[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
    "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
    "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount",
};

constexpr std::string_view kTestNames[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
    "float", "ge", "gt", "in", "integer", "iterable", "le", "lower", "lt", "mapping", "ne", "none", "number",
    "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", "==", "!=", "<", "<=", ">",
    ">=",
};

bool Given(const Params& p, size_t i) { return p[i].has_value(); }
const Value& Arg(const Params& p, size_t i) { return *p[i]; }

// jinja2's make_attrgetter: "a.b.0" walks items (integers for digit parts).
Result<Value> AttrGet(Renderer& r, Value item, const std::string& attribute, const Value* default_value) {
  size_t start = 0;
  while (start <= attribute.size()) {
    size_t dot = attribute.find('.', start);
    std::string part = attribute.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::String(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      key = Value::Int(std::strtoll(part.c_str(), nullptr, 10));
    }
    LSERVE_ASSIGN_OR_RETURN(item, r.GetItem(item, key));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (default_value != nullptr && item.is_undefined()) return *default_value;
  return item;
}

Value IgnoreCase(const Value& v) { return v.is_string() ? Value::String(PyLower(v.str())) : v; }

// Python sorted(): stable, TypeError on unorderable keys.
Status StableSortByKeys(const Renderer& r, std::vector<std::pair<Value, Value>>* keyed, bool reverse) {
  Status status;
  std::stable_sort(keyed->begin(), keyed->end(), [&](const auto& a, const auto& b) {
    if (!status.ok()) return false;
    Result<bool> less = reverse ? PyLess(b.first, a.first) : PyLess(a.first, b.first);
    if (!less.ok()) {
      status = r.Error(less.status().message());
      return false;
    }
    return *less;
  });
  return status;
}

Result<Value> Length(Renderer& r, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString: return Value::Int(static_cast<int64_t>(CodePointCount(v.str())));
    case Value::Kind::kSequence: return Value::Int(static_cast<int64_t>(v.items().size()));
    case Value::Kind::kDict: return Value::Int(static_cast<int64_t>(v.dict().size()));
    case Value::Kind::kUndefined: return Value::Int(0);
    case Value::Kind::kLoop: return Value::Int(static_cast<int64_t>(v.loop().items.items().size()));
    default: return r.Error("object of type '" + std::string(TypeName(v)) + "' has no len()");
  }
}

// Python round(x, n) for floats: correctly rounded, ties to even.
double RoundFloat(double x, int64_t ndigits) {
  if (!std::isfinite(x) || ndigits > 320) return x;
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    double r = std::strtod(buf, nullptr);
    return r == 0.0 ? std::copysign(0.0, x) : r;
  }
  if (ndigits < -320) return std::copysign(0.0, x);
  double scale = std::pow(10.0, static_cast<double>(-ndigits));
  double r = std::nearbyint(x / scale) * scale;
  return r == 0.0 ? std::copysign(0.0, x) : r;
}

Result<Value> RoundInt(const Renderer& r, int64_t x, int64_t ndigits) {
  if (ndigits >= 0) return Value::Int(x);
  if (ndigits < -18) return Value::Int(0);
  int64_t scale = 1;
  for (int64_t i = 0; i < -ndigits; ++i) scale *= 10;
  int64_t q = x / scale;
  int64_t rem = x % scale;
  if (rem < 0) {
    rem += scale;
    q -= 1;
  }
  if (2 * rem > scale || (2 * rem == scale && (q % 2 != 0))) q += 1;
  int64_t out;
  if (__builtin_mul_overflow(q, scale, &out)) return r.Error("integer result out of the supported range");
  return Value::Int(out);
}

// Python int(str, base) for bases 2..36 (and 0): sign, whitespace, '_'.
std::optional<int64_t> ParsePyInt(std::string_view s, int base) {
  std::string t = PyStrip(s, StripSide::kBoth, nullptr);
  size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  auto has_prefix = [&](char p) { return i + 1 < t.size() && t[i] == '0' && (t[i + 1] | 0x20) == p; };
  if (base == 0) {
    if (has_prefix('x')) {
      base = 16;
      i += 2;
    } else if (has_prefix('o')) {
      base = 8;
      i += 2;
    } else if (has_prefix('b')) {
      base = 2;
      i += 2;
    } else {
      base = 10;
    }
  } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) || (base == 2 && has_prefix('b'))) {
    i += 2;
  }
  if (i < t.size() && t[i] == '_' && base != 10) ++i;
  if (i >= t.size()) return std::nullopt;
  unsigned __int128 value = 0;
  bool prev_digit = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '_') {
      if (!prev_digit || i + 1 >= t.size()) return std::nullopt;
      prev_digit = false;
      continue;
    }
    int d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? (c | 0x20) - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    value = value * static_cast<unsigned>(base) + static_cast<unsigned>(d);
    if (value > static_cast<unsigned __int128>(INT64_MAX) + 1) return std::nullopt;
    prev_digit = true;
  }
  if (!prev_digit) return std::nullopt;
  if (!negative && value > static_cast<unsigned __int128>(INT64_MAX)) return std::nullopt;
  return negative ? -static_cast<int64_t>(value - 1) - 1 : static_cast<int64_t>(value);
}

// Python float(str): whitespace, '_' between digits, inf/nan spellings.
std::optional<double> ParsePyFloat(std::string_view s) {
  std::string t = PyStrip(s, StripSide::kBoth, nullptr);
  std::string clean;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_') {
      bool ok = i > 0 && i + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[i - 1])) &&
                std::isdigit(static_cast<unsigned char>(t[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    clean.push_back(t[i]);
  }
  if (clean.empty()) return std::nullopt;
  std::string lower = PyLower(clean);
  std::string_view body = lower;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return negative ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return negative ? -NAN : NAN;
  for (char c : body) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return v;
}

Result<std::string> JinjaTitle(const std::string& s) {
  // jinja2: re.split(r"([-\s({\[<]+)") then item[0].upper() + item[1:].lower()
  std::u32string cps = DecodeCodePoints(s);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c); };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    std::u32string_view piece(cps.data() + i, j - i);
    out += PyUpper(EncodeCodePoints(piece.substr(0, 1)));
    out += PyLower(EncodeCodePoints(piece.substr(1)));
    i = j;
  }
  return out;
}

std::string Indent(const std::string& s, const std::string& indention, bool first, bool blank) {
  std::vector<std::string> lines = PySplitLines(s + "\n");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

Result<Value> SelectOrReject(Renderer& r, const Value& subject, const CallArgs& args, bool select,
                             bool lookup_attr) {
  size_t offset = 0;
  std::string attribute;
  if (lookup_attr) {
    if (args.positional.empty()) return r.Error("Missing parameter for attribute name");
    attribute = PyStr(args.positional[0]);
    offset = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.positional.size() > offset) {
    test = PyStr(args.positional[offset]);
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(offset) + 1,
                                args.positional.end());
    test_args.keywords = args.keywords;
  }
  std::vector<Value> items;
  if (Truthy(subject)) {  // jinja2: `if seq: for item in seq: ...`
    LSERVE_ASSIGN_OR_RETURN(items, r.Iterate(subject));
  }
  std::vector<Value> kept;
  for (Value& item : items) {
    LSERVE_RETURN_IF_ERROR(r.Step());
    Value probe = item;
    if (lookup_attr) {
      LSERVE_ASSIGN_OR_RETURN(probe, AttrGet(r, item, attribute, nullptr));
    }
    bool verdict;
    if (test) {
      LSERVE_ASSIGN_OR_RETURN(verdict, r.ApplyTest(*test, probe, test_args));
    } else {
      verdict = Truthy(probe);
    }
    if (verdict == select) kept.push_back(std::move(item));
  }
  return r.MakeList(std::move(kept));
}

Result<Value> MinOrMax(Renderer& r, const Value& subject, const CallArgs& args, bool want_max) {
  Params p;
  LSERVE_RETURN_IF_ERROR(BindParams(r, want_max ? "max" : "min", args, {"case_sensitive", "attribute"}, 0, &p));
  bool case_sensitive = Given(p, 0) && Truthy(Arg(p, 0));
  LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(subject));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    Value key = items[i];
    if (Given(p, 1) && !Arg(p, 1).is_none()) {
      LSERVE_ASSIGN_OR_RETURN(key, AttrGet(r, items[i], PyStr(Arg(p, 1)), nullptr));
    }
    if (!case_sensitive) key = IgnoreCase(key);
    if (i == 0) {
      best_key = key;
      continue;
    }
    Result<bool> better = want_max ? PyLess(best_key, key) : PyLess(key, best_key);
    if (!better.ok()) return r.Error(better.status().message());
    if (*better) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}

Result<Value> Sum(Renderer& r, const Value& subject, const CallArgs& args) {
  Params p;
  LSERVE_RETURN_IF_ERROR(BindParams(r, "sum", args, {"attribute", "start"}, 0, &p));
  Value total = Given(p, 1) ? Arg(p, 1) : Value::Int(0);
  LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(subject));
  for (Value& item : items) {
    if (Given(p, 0) && !Arg(p, 0).is_none()) {
      LSERVE_ASSIGN_OR_RETURN(item, AttrGet(r, item, PyStr(Arg(p, 0)), nullptr));
    }
    LSERVE_ASSIGN_OR_RETURN(total, r.EvalBinary(BinaryOp::kAdd, total, item));
  }
  return total;
}

Result<Value> ToJson(Renderer& r, const Value& subject, const CallArgs& args) {
  Params p;
  LSERVE_RETURN_IF_ERROR(BindParams(r, "tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, &p));
  JsonDumpOptions options;
  options.max_bytes = r.limits().max_value_bytes;
  options.ensure_ascii = Given(p, 0) && Truthy(Arg(p, 0));
  if (Given(p, 1) && !Arg(p, 1).is_none()) {
    const Value& indent = Arg(p, 1);
    if (indent.is_string()) {
      options.indent = indent.str();
    } else if (indent.is_integral()) {
      int64_t n = indent.int_value();
      if (n > 1024) return r.Error("tojson indent too large");
      options.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
    } else {
      return r.Error("tojson indent must be an int or a string");
    }
    options.item_separator = ",";
  }
  if (Given(p, 2) && !Arg(p, 2).is_none()) {
    const Value& sep = Arg(p, 2);
    if (!sep.is_sequence() || sep.items().size() != 2 || !sep.items()[0].is_string() ||
        !sep.items()[1].is_string()) {
      return r.Error("tojson separators must be a pair of strings");
    }
    options.item_separator = sep.items()[0].str();
    options.key_separator = sep.items()[1].str();
  }
  options.sort_keys = Given(p, 3) && Truthy(Arg(p, 3));
  std::string out;
  Status status = AppendPythonJson(subject, options, &out);
  if (!status.ok()) {
    if (status.code() == StatusCode::kResourceExhausted) return status;
    return r.Error(status.message());
  }
  return r.MakeString(std::move(out));
}

Result<Value> FilterImpl(Renderer& r, std::string_view name, const Value& v, const CallArgs& args) {
  Params p;
  auto bind = [&](std::initializer_list<std::string_view> names, size_t required) {
    return BindParams(r, name, args, names, required, &p);
  };
  auto str_result = [&](std::string s) { return r.MakeString(std::move(s)); };

  if (name == "abs") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
    if (v.is_integral()) {
      if (v.int_value() == INT64_MIN) return r.Error("integer result out of the supported range");
      return Value::Int(v.int_value() < 0 ? -v.int_value() : v.int_value());
    }
    return r.Error("bad operand type for abs(): '" + std::string(TypeName(v)) + "'");
  }
  if (name == "attr") {
    LSERVE_RETURN_IF_ERROR(bind({"name"}, 1));
    std::string attr = PyStr(Arg(p, 0));
    if (v.is_dict() && ClassifyMethod(v, attr) == MethodSafety::kNotAMethod &&
        !(attr.size() > 4 && attr.rfind("__", 0) == 0)) {
      return Value::Undefined("'dict object' has no attribute '" + attr + "'");
    }
    return r.GetAttr(v, attr);
  }
  if (name == "batch") {
    LSERVE_RETURN_IF_ERROR(bind({"linecount", "fill_with"}, 1));
    LSERVE_ASSIGN_OR_RETURN(int64_t n, IntArg(r, Arg(p, 0), "linecount"));
    if (n <= 0) return r.Error("batch size must be positive");
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    std::vector<Value> batches;
    std::vector<Value> current;
    for (Value& item : items) {
      current.push_back(std::move(item));
      if (static_cast<int64_t>(current.size()) == n) {
        LSERVE_ASSIGN_OR_RETURN(Value b, r.MakeList(std::move(current)));
        batches.push_back(std::move(b));
        current.clear();
      }
    }
    if (!current.empty()) {
      if (Given(p, 1) && !Arg(p, 1).is_none()) {
        while (static_cast<int64_t>(current.size()) < n) current.push_back(Arg(p, 1));
      }
      LSERVE_ASSIGN_OR_RETURN(Value b, r.MakeList(std::move(current)));
      batches.push_back(std::move(b));
    }
    return r.MakeList(std::move(batches));
  }
  if (name == "capitalize") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return str_result(PyCapitalize(PyStr(v)));
  }
  if (name == "center") {
    LSERVE_RETURN_IF_ERROR(bind({"width"}, 0));
    CallArgs method_args;
    method_args.positional.push_back(Given(p, 0) ? Arg(p, 0) : Value::Int(80));
    return CallMethod(r, Value::String(PyStr(v)), "center", method_args);
  }
  if (name == "count" || name == "length") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return Length(r, v);
  }
  if (name == "default" || name == "d") {
    LSERVE_RETURN_IF_ERROR(bind({"default_value", "boolean"}, 0));
    bool boolean = Given(p, 1) && Truthy(Arg(p, 1));
    if (v.is_undefined() || (boolean && !Truthy(v))) return Given(p, 0) ? Arg(p, 0) : Value::String("");
    return v;
  }
  if (name == "dictsort") {
    LSERVE_RETURN_IF_ERROR(bind({"case_sensitive", "by", "reverse"}, 0));
    if (!v.is_dict()) return r.Error("dictsort needs a mapping, got " + std::string(TypeName(v)));
    bool case_sensitive = Given(p, 0) && Truthy(Arg(p, 0));
    std::string by = Given(p, 1) ? PyStr(Arg(p, 1)) : "key";
    if (by != "key" && by != "value") return r.Error("You can only sort by either \"key\" or \"value\"");
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& [key, value] : v.dict().entries()) {
      Value sort_key = by == "key" ? key : value;
      if (!case_sensitive) sort_key = IgnoreCase(sort_key);
      LSERVE_ASSIGN_OR_RETURN(Value pair, r.MakeList({key, value}, SequenceKind::kTuple));
      keyed.emplace_back(std::move(sort_key), std::move(pair));
    }
    LSERVE_RETURN_IF_ERROR(StableSortByKeys(r, &keyed, Given(p, 2) && Truthy(Arg(p, 2))));
    std::vector<Value> out;
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return r.MakeList(std::move(out));
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return str_result(HtmlEscape(PyStr(v)));
  }
  if (name == "first") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (v.is_undefined()) return Value::Undefined("No last item, sequence was empty.");
    if (!v.is_string() && !v.is_dict() && !v.is_indexable_sequence()) {
      return r.Error("'" + std::string(TypeName(v)) + "' object is not reversible");
    }
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
    return items.back();
  }
  if (name == "float") {
    LSERVE_RETURN_IF_ERROR(bind({"default"}, 0));
    Value fallback = Given(p, 0) ? Arg(p, 0) : Value::Float(0.0);
    if (v.is_undefined()) return r.UndefinedError(v);
    if (v.is_number()) return Value::Float(v.float_value());
    if (v.is_string()) {
      std::optional<double> f = ParsePyFloat(v.str());
      return f ? Value::Float(*f) : fallback;
    }
    return fallback;
  }
  if (name == "format") {
    if (!args.positional.empty() && !args.keywords.empty()) {
      return r.Error("can't handle positional and keyword arguments at the same time");
    }
    Value format_args;
    if (!args.keywords.empty()) {
      Dict d;
      for (const auto& [key, value] : args.keywords) LSERVE_RETURN_IF_ERROR(d.Set(Value::String(key), value));
      format_args = Value::FromDict(std::move(d));
    } else {
      LSERVE_ASSIGN_OR_RETURN(format_args, r.MakeList(args.positional, SequenceKind::kTuple));
    }
    return PercentFormat(r, PyStr(v), format_args);
  }
  if (name == "indent") {
    LSERVE_RETURN_IF_ERROR(bind({"width", "first", "blank"}, 0));
    std::string indention = "    ";
    if (Given(p, 0)) {
      if (Arg(p, 0).is_string()) {
        indention = Arg(p, 0).str();
      } else {
        LSERVE_ASSIGN_OR_RETURN(int64_t width, IntArg(r, Arg(p, 0), "width"));
        if (width > 4096) return r.Error("indent width too large");
        indention = std::string(static_cast<size_t>(std::max<int64_t>(0, width)), ' ');
      }
    }
    if (!v.is_string()) {  // jinja2 appends "\n" to the value itself
      return r.Error("unsupported operand type(s) for +=: '" + std::string(TypeName(v)) + "' and 'str'");
    }
    const std::string& s = v.str();
    LSERVE_RETURN_IF_ERROR(r.ChargeBytes(s.size() + indention.size() * (1 + std::count(s.begin(), s.end(), '\n'))));
    return str_result(Indent(s, indention, Given(p, 1) && Truthy(Arg(p, 1)), Given(p, 2) && Truthy(Arg(p, 2))));
  }
  if (name == "int") {
    LSERVE_RETURN_IF_ERROR(bind({"default", "base"}, 0));
    Value fallback = Given(p, 0) ? Arg(p, 0) : Value::Int(0);
    int64_t base = 10;
    if (Given(p, 1)) {
      LSERVE_ASSIGN_OR_RETURN(base, IntArg(r, Arg(p, 1), "base"));
    }
    if (v.is_undefined()) return r.UndefinedError(v);
    if (v.is_integral()) return Value::Int(v.int_value());
    if (v.is_float()) {
      double f = v.float_value();
      if (std::isnan(f)) return fallback;
      if (std::isinf(f) || std::fabs(f) >= 9.2e18) return r.Error("cannot convert float to integer");
      return Value::Int(static_cast<int64_t>(f));
    }
    if (v.is_string()) {
      if (base == 0 || (base >= 2 && base <= 36)) {
        std::optional<int64_t> i = ParsePyInt(v.str(), static_cast<int>(base));
        if (i) return Value::Int(*i);
      }
      std::optional<double> f = ParsePyFloat(v.str());
      if (f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) return Value::Int(static_cast<int64_t>(*f));
      if (f && std::isinf(*f)) return r.Error("cannot convert float infinity to integer");
    }
    return fallback;
  }
  if (name == "items") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (v.is_undefined()) return r.MakeList({});
    if (!v.is_dict()) return r.Error("Can only get item pairs from a mapping.");
    std::vector<Value> pairs;
    for (const auto& [key, value] : v.dict().entries()) {
      LSERVE_ASSIGN_OR_RETURN(Value pair, r.MakeList({key, value}, SequenceKind::kTuple));
      pairs.push_back(std::move(pair));
    }
    return r.MakeList(std::move(pairs));
  }
  if (name == "join") {
    LSERVE_RETURN_IF_ERROR(bind({"d", "attribute"}, 0));
    std::string sep = Given(p, 0) ? PyStr(Arg(p, 0)) : "";
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      LSERVE_RETURN_IF_ERROR(r.Step());
      Value item = items[i];
      if (Given(p, 1) && !Arg(p, 1).is_none()) {
        LSERVE_ASSIGN_OR_RETURN(item, AttrGet(r, item, PyStr(Arg(p, 1)), nullptr));
      }
      if (i > 0) out += sep;
      AppendPyStr(item, &out);
      if (out.size() > r.limits().max_value_bytes) return r.ChargeBytes(out.size());
    }
    return str_result(std::move(out));
  }
  if (name == "list") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    return r.MakeList(std::move(items));
  }
  if (name == "lower") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return str_result(PyLower(PyStr(v)));
  }
  if (name == "upper") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    return str_result(PyUpper(PyStr(v)));
  }
  if (name == "title") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    LSERVE_ASSIGN_OR_RETURN(std::string t, JinjaTitle(PyStr(v)));
    return str_result(std::move(t));
  }
  if (name == "trim") {
    LSERVE_RETURN_IF_ERROR(bind({"chars"}, 0));
    std::optional<std::string> chars;
    if (Given(p, 0) && !Arg(p, 0).is_none()) {
      if (!Arg(p, 0).is_string()) return r.Error("strip arg must be None or str");
      chars = Arg(p, 0).str();
    }
    return str_result(PyStrip(PyStr(v), StripSide::kBoth, chars ? &*chars : nullptr));
  }
  if (name == "map") {
    std::vector<Value> items;
    if (Truthy(v)) {  // jinja2: `if value: for item in value: ...`
      LSERVE_ASSIGN_OR_RETURN(items, r.Iterate(v));
    }
    std::vector<Value> out;
    out.reserve(items.size());
    if (args.positional.empty() && args.Keyword("attribute") != nullptr) {
      std::string attribute = PyStr(*args.Keyword("attribute"));
      const Value* fallback = args.Keyword("default");
      for (const auto& [key, value] : args.keywords) {
        if (key != "attribute" && key != "default") return r.Error("Unexpected keyword argument '" + key + "'");
      }
      const Value* fallback_if_set = (fallback != nullptr && !fallback->is_none()) ? fallback : nullptr;
      for (Value& item : items) {
        LSERVE_RETURN_IF_ERROR(r.Step());
        LSERVE_ASSIGN_OR_RETURN(Value mapped, AttrGet(r, item, attribute, fallback_if_set));
        out.push_back(std::move(mapped));
      }
      return r.MakeList(std::move(out));
    }
    if (args.positional.empty()) return r.Error("map requires a filter argument");
    std::string filter = PyStr(args.positional[0]);
    if (!IsKnownFilter(filter)) return r.Error("No filter named '" + filter + "'.");
    CallArgs filter_args;
    filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
    filter_args.keywords = args.keywords;
    for (Value& item : items) {
      LSERVE_RETURN_IF_ERROR(r.Step());
      LSERVE_ASSIGN_OR_RETURN(Value mapped, r.ApplyFilter(filter, item, filter_args));
      out.push_back(std::move(mapped));
    }
    return r.MakeList(std::move(out));
  }
  if (name == "max" || name == "min") return MinOrMax(r, v, args, name == "max");
  if (name == "select") return SelectOrReject(r, v, args, true, false);
  if (name == "reject") return SelectOrReject(r, v, args, false, false);
  if (name == "selectattr") return SelectOrReject(r, v, args, true, true);
  if (name == "rejectattr") return SelectOrReject(r, v, args, false, true);
  if (name == "replace") {
    LSERVE_RETURN_IF_ERROR(bind({"old", "new", "count"}, 2));
    CallArgs method_args;
    method_args.positional = {Value::String(PyStr(Arg(p, 0))), Value::String(PyStr(Arg(p, 1)))};
    if (Given(p, 2) && !Arg(p, 2).is_none()) method_args.positional.push_back(Arg(p, 2));
    return CallMethod(r, Value::String(PyStr(v)), "replace", method_args);
  }
  if (name == "reverse") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (v.is_string()) {
      std::u32string cps = DecodeCodePoints(v.str());
      std::reverse(cps.begin(), cps.end());
      return str_result(EncodeCodePoints(cps));
    }
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    std::reverse(items.begin(), items.end());
    return r.MakeList(std::move(items));
  }
  if (name == "round") {
    LSERVE_RETURN_IF_ERROR(bind({"precision", "method"}, 0));
    int64_t precision = 0;
    if (Given(p, 0)) {
      LSERVE_ASSIGN_OR_RETURN(precision, IntArg(r, Arg(p, 0), "precision"));
    }
    std::string method = Given(p, 1) ? PyStr(Arg(p, 1)) : "common";
    if (method != "common" && method != "ceil" && method != "floor") {
      return r.Error("method must be common, ceil or floor");
    }
    if (!v.is_number()) return r.Error("type " + std::string(TypeName(v)) + " doesn't define __round__ method");
    if (method == "common") {
      if (v.is_integral()) return RoundInt(r, v.int_value(), precision);
      return Value::Float(RoundFloat(v.float_value(), precision));
    }
    double scale = std::pow(10.0, static_cast<double>(precision));
    double scaled = v.float_value() * scale;
    double rounded = method == "ceil" ? std::ceil(scaled) : std::floor(scaled);
    return Value::Float(rounded / scale);
  }
  if (name == "safe" || name == "string") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    if (v.is_string()) return v;
    return str_result(PyStr(v));
  }
  if (name == "sort") {
    LSERVE_RETURN_IF_ERROR(bind({"reverse", "case_sensitive", "attribute"}, 0));
    bool reverse = Given(p, 0) && Truthy(Arg(p, 0));
    bool case_sensitive = Given(p, 1) && Truthy(Arg(p, 1));
    std::vector<std::string> attributes;
    if (Given(p, 2) && !Arg(p, 2).is_none()) {
      std::string spec = PyStr(Arg(p, 2));
      size_t start = 0;
      while (true) {
        size_t comma = spec.find(',', start);
        attributes.push_back(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    LSERVE_RETURN_IF_ERROR(r.Step(items.size()));
    std::vector<std::pair<Value, Value>> keyed;
    keyed.reserve(items.size());
    for (Value& item : items) {
      Value key = item;
      if (!attributes.empty()) {
        std::vector<Value> parts;
        for (const std::string& attribute : attributes) {
          LSERVE_ASSIGN_OR_RETURN(Value part, AttrGet(r, item, attribute, nullptr));
          parts.push_back(case_sensitive ? part : IgnoreCase(part));
        }
        key = parts.size() == 1 ? parts[0] : Value::Tuple(std::move(parts));
      } else if (!case_sensitive) {
        key = IgnoreCase(key);
      }
      keyed.emplace_back(std::move(key), std::move(item));
    }
    LSERVE_RETURN_IF_ERROR(StableSortByKeys(r, &keyed, reverse));
    std::vector<Value> out;
    out.reserve(keyed.size());
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return r.MakeList(std::move(out));
  }
  if (name == "sum") return Sum(r, v, args);
  if (name == "tojson") return ToJson(r, v, args);
  if (name == "unique") {
    LSERVE_RETURN_IF_ERROR(bind({"case_sensitive", "attribute"}, 0));
    bool case_sensitive = Given(p, 0) && Truthy(Arg(p, 0));
    LSERVE_ASSIGN_OR_RETURN(std::vector<Value> items, r.Iterate(v));
    std::unordered_set<std::string> seen;
    std::vector<Value> out;
    for (Value& item : items) {
      LSERVE_RETURN_IF_ERROR(r.Step());
      Value key = item;
      if (Given(p, 1) && !Arg(p, 1).is_none()) {
        LSERVE_ASSIGN_OR_RETURN(key, AttrGet(r, item, PyStr(Arg(p, 1)), nullptr));
      }
      if (!case_sensitive) key = IgnoreCase(key);
      std::optional<std::string> hash = HashKey(key);
      if (!hash) return r.Error("unhashable type: '" + std::string(TypeName(key)) + "'");
      if (seen.insert(*hash).second) out.push_back(std::move(item));
    }
    return r.MakeList(std::move(out));
  }
  if (name == "wordcount") {
    LSERVE_RETURN_IF_ERROR(bind({}, 0));
    int64_t words = 0;
    bool in_word = false;
    for (char32_t cp : DecodeCodePoints(PyStr(v))) {
      bool word_char = cp == '_' || IsPyAlpha(cp) || IsPyDigit(cp) || (cp >= 0x300 && cp <= 0x36F);
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value::Int(words);
  }
  return r.Error("No filter named '" + std::string(name) + "'.");
}

Result<bool> CompareTest(Renderer& r, CompareOp op, const Value& v, const CallArgs& args, std::string_view name) {
  Params p;
  LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"other"}, 1, &p));
  return r.EvalCompare(op, v, Arg(p, 0));
}

Result<bool> TestImpl(Renderer& r, std::string_view name, const Value& v, const CallArgs& args) {
  Params p;
  auto no_args = [&]() { return BindParams(r, name, args, {}, 0, &p); };
  if (name == "defined") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return !v.is_undefined();
  }
  if (name == "undefined") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_undefined();
  }
  if (name == "none") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_none();
  }
  if (name == "boolean") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_bool();
  }
  if (name == "true" || name == "false") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_bool() && v.bool_value() == (name == "true");
  }
  if (name == "integer") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_int();
  }
  if (name == "float") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_float();
  }
  if (name == "number") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_number();
  }
  if (name == "string") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_string();
  }
  if (name == "mapping") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_dict();
  }
  if (name == "iterable") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined() || v.is_loop();
  }
  if (name == "sequence") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_string() || v.is_indexable_sequence() || v.is_dict() || v.is_undefined();
  }
  if (name == "callable") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return v.is_callable() || v.is_undefined();
  }
  if (name == "escaped") {
    LSERVE_RETURN_IF_ERROR(no_args());
    return false;
  }
  if (name == "odd" || name == "even") {
    LSERVE_RETURN_IF_ERROR(no_args());
    LSERVE_ASSIGN_OR_RETURN(Value rem, r.EvalBinary(BinaryOp::kMod, v, Value::Int(2)));
    return PyEquals(rem, Value::Int(name == "odd" ? 1 : 0));
  }
  if (name == "divisibleby") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"num"}, 1, &p));
    LSERVE_ASSIGN_OR_RETURN(Value rem, r.EvalBinary(BinaryOp::kMod, v, Arg(p, 0)));
    return PyEquals(rem, Value::Int(0));
  }
  if (name == "eq" || name == "equalto" || name == "==") return CompareTest(r, CompareOp::kEq, v, args, name);
  if (name == "ne" || name == "!=") return CompareTest(r, CompareOp::kNe, v, args, name);
  if (name == "lt" || name == "lessthan" || name == "<") return CompareTest(r, CompareOp::kLt, v, args, name);
  if (name == "le" || name == "<=") return CompareTest(r, CompareOp::kLe, v, args, name);
  if (name == "gt" || name == "greaterthan" || name == ">") return CompareTest(r, CompareOp::kGt, v, args, name);
  if (name == "ge" || name == ">=") return CompareTest(r, CompareOp::kGe, v, args, name);
  if (name == "in") return CompareTest(r, CompareOp::kIn, v, args, name);
  if (name == "sameas") {
    LSERVE_RETURN_IF_ERROR(BindParams(r, name, args, {"other"}, 1, &p));
    const Value& other = Arg(p, 0);
    if (v.kind() != other.kind()) return false;
    switch (v.kind()) {
      case Value::Kind::kNone:
      case Value::Kind::kUndefined: return v.is_none() || v.identity() == other.identity();
      case Value::Kind::kBool: return v.bool_value() == other.bool_value();
      case Value::Kind::kInt:  // CPython caches small ints
        return v.int_value() == other.int_value() && v.int_value() >= -5 && v.int_value() <= 256;
      case Value::Kind::kFloat: return false;
      default: return v.identity() == other.identity();
    }
  }
  if (name == "lower" || name == "upper") {
    LSERVE_RETURN_IF_ERROR(no_args());
    CallArgs none;
    LSERVE_ASSIGN_OR_RETURN(Value result,
                            CallMethod(r, Value::String(PyStr(v)), name == "lower" ? "islower" : "isupper", none));
    return Truthy(result);
  }
  if (name == "filter" || name == "test") {
    LSERVE_RETURN_IF_ERROR(no_args());
    if (!v.is_string()) return false;
    return name == "filter" ? IsKnownFilter(v.str()) : IsKnownTest(v.str());
  }
  return r.Error("No test named '" + std::string(name) + "' found.");
}

}  // namespace

bool IsKnownFilter(std::string_view name) {
  return std::find(std::begin(kFilterNames), std::end(kFilterNames), name) != std::end(kFilterNames);
}

bool IsKnownTest(std::string_view name) {
  return std::find(std::begin(kTestNames), std::end(kTestNames), name) != std::end(kTestNames);
}

Result<Value> CallFilter(Renderer& r, std::string_view name, const Value& subject, const CallArgs& args) {
  LSERVE_RETURN_IF_ERROR(r.Step());
  return FilterImpl(r, name, subject, args);
}

Result<bool> CallTest(Renderer& r, std::string_view name, const Value& subject, const CallArgs& args) {
  LSERVE_RETURN_IF_ERROR(r.Step());
  return TestImpl(r, name, subject, args);
}

Status BindParams(const Renderer& r, std::string_view function, const CallArgs& args,
                  std::initializer_list<std::string_view> names, size_t required,
                  std::vector<std::optional<Value>>* out) {
  out->assign(names.size(), std::nullopt);
  if (args.positional.size() > names.size()) {
    return r.Error(std::string(function) + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                   std::to_string(args.positional.size()) + " given)");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) (*out)[i] = args.positional[i];
  for (const auto& [key, value] : args.keywords) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) {
      return r.Error(std::string(function) + "() got an unexpected keyword argument '" + key + "'");
    }
    size_t index = static_cast<size_t>(it - names.begin());
    if ((*out)[index]) {
      return r.Error(std::string(function) + "() got multiple values for argument '" + key + "'");
    }
    (*out)[index] = value;
  }
  for (size_t i = 0; i < required; ++i) {
    if (!(*out)[i]) {
      return r.Error(std::string(function) + "() missing required argument '" + std::string(names.begin()[i]) + "'");
    }
  }
  return Status::Ok();
}

Result<int64_t> IntArg(const Renderer& r, const Value& v, std::string_view what) {
  if (v.is_integral()) return v.int_value();
  if (v.is_undefined()) return r.UndefinedError(v);
  return r.Error("'" + std::string(TypeName(v)) + "' object cannot be interpreted as an integer (" +
                 std::string(what) + ")");
}

}  // namespace lserve::jinja
