// Type-checked access to tokenizer.json / tokenizer_config.json values.
// Nothing here throws: a wrong or missing field is an InvalidArgument that
// names the field.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/unicode.h"

namespace lserve::json_util {

using nlohmann::json;

// Parses without exceptions; `what` names the document in the error.
inline Result<json> Parse(std::string_view text, std::string_view what) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument(std::string(what) + " is not valid JSON");
  return doc;
}

// The member `key` of object `obj`, or nullptr when absent or null.
inline const json* Find(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

inline Status TypeError(std::string_view where, std::string_view key, std::string_view want) {
  return InvalidArgument(std::string(where) + ": \"" + std::string(key) + "\" must be " +
                         std::string(want));
}

inline Result<bool> GetBool(const json& obj, std::string_view key, bool fallback,
                            std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return TypeError(where, key, "a boolean");
  return v->get<bool>();
}

inline Result<std::string> GetString(const json& obj, std::string_view key, std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr) return TypeError(where, key, "present (a string)");
  if (!v->is_string()) return TypeError(where, key, "a string");
  return v->get<std::string>();
}

inline Result<std::optional<std::string>> GetOptionalString(const json& obj, std::string_view key,
                                                            std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return TypeError(where, key, "a string or null");
  return std::optional<std::string>(v->get<std::string>());
}

// A non-negative integer that fits in `max`.
inline Result<uint64_t> GetUInt(const json& obj, std::string_view key, uint64_t fallback,
                                uint64_t max, std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr) return fallback;
  if (v->is_number_unsigned()) {
    const uint64_t x = v->get<uint64_t>();
    if (x > max) return TypeError(where, key, "at most " + std::to_string(max));
    return x;
  }
  if (v->is_number_integer()) {
    const int64_t x = v->get<int64_t>();
    if (x < 0 || static_cast<uint64_t>(x) > max) {
      return TypeError(where, key, "between 0 and " + std::to_string(max));
    }
    return static_cast<uint64_t>(x);
  }
  return TypeError(where, key, "a non-negative integer");
}

// A token id: an integer in [0, limit).
inline Result<int32_t> AsTokenId(const json& v, int64_t limit, std::string_view where) {
  if (!v.is_number_integer()) return InvalidArgument(std::string(where) + ": token id must be an integer");
  const int64_t x = v.is_number_unsigned()
                        ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(),
                                                                  std::numeric_limits<int64_t>::max()))
                        : v.get<int64_t>();
  if (x < 0 || x >= limit) {
    return InvalidArgument(std::string(where) + ": token id " + std::to_string(x) +
                           " is outside [0, " + std::to_string(limit) + ")");
  }
  return static_cast<int32_t>(x);
}

// The one character of a string field (Metaspace replacement, Strip content).
// (nlohmann's parser only accepts well-formed UTF-8 strings.)
inline Result<char32_t> GetChar(const json& obj, std::string_view key, std::string_view where) {
  const json* v = Find(obj, key);
  if (v == nullptr || !v->is_string()) return TypeError(where, key, "a single character");
  const std::string& s = v->get_ref<const std::string&>();
  if (s.empty()) return TypeError(where, key, "a single character");
  size_t i = 0;
  const char32_t c = unicode::NextCodePoint(s, &i);
  if (i != s.size()) return TypeError(where, key, "a single character");
  return c;
}

// The array member `key` of obj, each element turned into a T by
// parse(element) -> Result<T> (the steps of a "Sequence" normalizer,
// pre-tokenizer, post-processor or decoder); the first failure is returned.
template <class T, class ParseFn>
Result<std::vector<T>> GetArrayOf(const json& obj, std::string_view key, std::string_view where, ParseFn parse) {
  const json* list = Find(obj, key);
  if (list == nullptr || !list->is_array()) return TypeError(where, key, "an array");
  std::vector<T> out;
  for (const json& item : *list) {
    LSERVE_ASSIGN_OR_RETURN(T element, parse(item));
    out.push_back(std::move(element));
  }
  return out;
}

}  // namespace lserve::json_util
