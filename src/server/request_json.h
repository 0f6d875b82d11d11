// Request JSON: the guarded parse of a request body and the typed field
// reads that the request parsers share. Each read names the field in the
// ApiError it returns; none throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace lserve::request_json {

// Bodies parse into nlohmann::json (std::map objects): an object with many
// keys costs O(n log n), where ordered_json's linear lookups would be
// quadratic. Top-level fields are therefore visited in key order.
using Json = nlohmann::json;

// Scans the raw text before any parser sees it: raw NUL bytes, nesting
// deeper than `max_depth` (nlohmann's DOM and everything that walks it
// would pay for it), and NaN, Infinity or numbers that overflow a double
// (1e400), which are named by the top-level field they sit in (param ""
// when none).
// Everything else that is wrong with the text is left to the parser.
std::optional<ApiError> ScanBody(std::string_view body, int max_depth);

// ScanBody, then the parse; a 400 unless the body is one JSON object.
std::variant<Json, ApiError> ParseBodyObject(std::string_view body, int max_depth);

// A field name for a message: at most 64 bytes, valid UTF-8.
std::string Printable(std::string_view name);

// "a boolean", "a string", "an integer", ...: how the type of `v` is named in messages.
std::string_view TypeName(const Json& v);

// Typed reads of a non-null value `v` of the field `param`.
std::optional<ApiError> ReadBool(const Json& v, std::string_view param, bool* out);
// Integers only: 1.5, 3.0, true and "3" are type errors; unsigned values
// above INT64_MAX are range errors.
std::optional<ApiError> ReadInt64(const Json& v, std::string_view param, int64_t* out);
// Any JSON number (integers included); true and "1" are type errors.
std::optional<ApiError> ReadNumber(const Json& v, std::string_view param, double* out);
std::optional<ApiError> ReadString(const Json& v, std::string_view param, std::string* out);
// An integer in [0, vocab_size): anything else is a 400 saying "out of
// vocabulary" (or a type error for non-integers).
std::optional<ApiError> ReadTokenId(const Json& v, std::string_view param, int32_t vocab_size, int32_t* out);

// "<field> must be <what>, got <type>".
ApiError TypeError(std::string_view param, std::string_view what, const Json& v);
// "Unrecognized request argument supplied: <field>", param = field.
ApiError UnknownField(std::string_view field);
// "<field> is not supported by this server", param = field.
ApiError Unsupported(std::string_view field, std::string_view detail = {});

}  // namespace lserve::request_json
