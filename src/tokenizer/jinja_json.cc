#include "tokenizer/jinja_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_text.h"

namespace lserve::jinja {
namespace {

// JSON's two-character escapes; false (nothing appended) for any other
// code point.
bool AppendShortEscape(char32_t c, std::string* out) {
  switch (c) {
    case '"': out->append("\\\""); return true;
    case '\\': out->append("\\\\"); return true;
    case '\n': out->append("\\n"); return true;
    case '\r': out->append("\\r"); return true;
    case '\t': out->append("\\t"); return true;
    case '\b': out->append("\\b"); return true;
    case '\f': out->append("\\f"); return true;
    default: return false;
  }
}

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  char buf[16];
  auto append_u = [&](unsigned cp) {
    std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
    out->append(buf);
  };
  if (!ensure_ascii) {
    for (char ch : s) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (AppendShortEscape(c, out)) continue;
      if (c < 0x20) {
        append_u(c);
      } else {
        out->push_back(ch);
      }
    }
  } else {
    for (char32_t cp : DecodeCodePoints(s)) {
      if (AppendShortEscape(cp, out)) continue;
      if (cp < 0x20 || cp > 0x7E) {
        if (cp >= 0x10000) {
          char32_t v = cp - 0x10000;
          append_u(0xD800 + static_cast<unsigned>(v >> 10));
          append_u(0xDC00 + static_cast<unsigned>(v & 0x3FF));
        } else {
          append_u(static_cast<unsigned>(cp));
        }
      } else {
        out->push_back(static_cast<char>(cp));
      }
    }
  }
  out->push_back('"');
}

std::string JsonFloat(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return PyFloatRepr(f);
}

class JsonWriter {
 public:
  JsonWriter(const JsonDumpOptions& options, std::string* out) : options_(options), out_(out) {}

  Status Write(const Value& v, int level) {
    if (out_->size() > options_.max_bytes) {
      return ResourceExhausted("tojson output exceeds " + std::to_string(options_.max_bytes) + " bytes");
    }
    switch (v.kind()) {
      case Value::Kind::kNone: out_->append("null"); return Status::Ok();
      case Value::Kind::kBool: out_->append(v.bool_value() ? "true" : "false"); return Status::Ok();
      case Value::Kind::kInt: out_->append(std::to_string(v.int_value())); return Status::Ok();
      case Value::Kind::kFloat: out_->append(JsonFloat(v.float_value())); return Status::Ok();
      case Value::Kind::kString: AppendJsonString(v.str(), options_.ensure_ascii, out_); return Status::Ok();
      case Value::Kind::kSequence:
        if (v.seq().kind == SequenceKind::kList || v.seq().kind == SequenceKind::kTuple) {
          return WriteArray(v.items(), level);
        }
        break;
      case Value::Kind::kDict: return WriteObject(v.dict(), level);
      default: break;
    }
    return InvalidArgument("Object of type " + std::string(TypeName(v)) + " is not JSON serializable");
  }

 private:
  void NewLine(int level) {
    if (!options_.indent) return;
    out_->push_back('\n');
    for (int i = 0; i < level; ++i) out_->append(*options_.indent);
  }

  Status WriteArray(const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out_->append("[]");
      return Status::Ok();
    }
    out_->push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out_->append(options_.item_separator);
      NewLine(level + 1);
      LSERVE_RETURN_IF_ERROR(Write(items[i], level + 1));
    }
    NewLine(level);
    out_->push_back(']');
    return Status::Ok();
  }

  Result<std::string> KeyText(const Value& key) {
    switch (key.kind()) {
      case Value::Kind::kString: return key.str();
      case Value::Kind::kNone: return std::string("null");
      case Value::Kind::kBool: return std::string(key.bool_value() ? "true" : "false");
      case Value::Kind::kInt: return std::to_string(key.int_value());
      case Value::Kind::kFloat: return JsonFloat(key.float_value());
      default:
        return InvalidArgument("keys must be str, int, float, bool or None, not " + std::string(TypeName(key)));
    }
  }

  Status WriteObject(const Dict& dict, int level) {
    if (dict.empty()) {
      out_->append("{}");
      return Status::Ok();
    }
    std::vector<const std::pair<Value, Value>*> entries;
    entries.reserve(dict.size());
    for (const auto& entry : dict.entries()) entries.push_back(&entry);
    if (options_.sort_keys) {
      Status sort_status;
      std::stable_sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
        Result<bool> less = PyLess(a->first, b->first);
        if (!less.ok()) {
          sort_status = less.status();
          return false;
        }
        return *less;
      });
      LSERVE_RETURN_IF_ERROR(sort_status);
    }
    out_->push_back('{');
    bool first = true;
    for (const auto* entry : entries) {
      if (!first) out_->append(options_.item_separator);
      first = false;
      NewLine(level + 1);
      LSERVE_ASSIGN_OR_RETURN(std::string key, KeyText(entry->first));
      AppendJsonString(key, options_.ensure_ascii, out_);
      out_->append(options_.key_separator);
      LSERVE_RETURN_IF_ERROR(Write(entry->second, level + 1));
    }
    NewLine(level);
    out_->push_back('}');
    return Status::Ok();
  }

  const JsonDumpOptions& options_;
  std::string* out_;
};

template <typename Json>
Result<Value> Convert(const Json& json, int depth_left) {
  if (depth_left <= 0) return InvalidArgument("JSON input nested too deeply for the chat template");
  switch (json.type()) {
    case nlohmann::json::value_t::null: return Value::None();
    case nlohmann::json::value_t::boolean: return Value::Bool(json.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::Int(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = json.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return InvalidArgument("integer in chat input exceeds int64");
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::Float(json.template get<double>());
    case nlohmann::json::value_t::string: return Value::String(json.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& element : json) {
        LSERVE_ASSIGN_OR_RETURN(Value item, Convert(element, depth_left - 1));
        items.push_back(std::move(item));
      }
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict dict;
      for (auto it = json.begin(); it != json.end(); ++it) {
        LSERVE_ASSIGN_OR_RETURN(Value item, Convert(it.value(), depth_left - 1));
        LSERVE_RETURN_IF_ERROR(dict.Set(Value::String(it.key()), std::move(item)));
      }
      return Value::FromDict(std::move(dict));
    }
    default: return InvalidArgument("unsupported JSON value in chat template input");
  }
}

}  // namespace

Status AppendPythonJson(const Value& v, const JsonDumpOptions& options, std::string* out) {
  JsonWriter writer(options, out);
  return writer.Write(v, 0);
}

Result<Value> ValueFromJson(const nlohmann::json& json, int max_depth) { return Convert(json, max_depth); }
Result<Value> ValueFromJson(const nlohmann::ordered_json& json, int max_depth) {
  return Convert(json, max_depth);
}

}  // namespace lserve::jinja
