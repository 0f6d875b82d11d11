// JSON in and out of template values. Input follows Python's json.loads
// (objects keep their key order when given an ordered_json); output follows
// json.dumps as transformers' `tojson` filter calls it (ensure_ascii=False,
// ", " / ": " separators, indent, sort_keys).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/jinja_value.h"

namespace lserve::jinja {

struct JsonDumpOptions {
  std::optional<std::string> indent;  // json.dumps(indent=...): spaces or a string
  std::string item_separator = ", ";  // ", " without indent, "," with it
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
  size_t max_bytes = 4u << 20;        // fail once the text would grow past this
};

// Appends json.dumps(v). Fails (TypeError text) on values JSON cannot hold
// (Undefined, namespaces, macros, non-scalar dict keys) and with
// ResourceExhausted past max_bytes.
Status AppendPythonJson(const Value& v, const JsonDumpOptions& options, std::string* out);

// Converts parsed JSON into template values; nesting deeper than max_depth
// and integers beyond int64 are rejected.
Result<Value> ValueFromJson(const nlohmann::json& json, int max_depth);
Result<Value> ValueFromJson(const nlohmann::ordered_json& json, int max_depth);

}  // namespace lserve::jinja
