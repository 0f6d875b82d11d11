// Splits template source into tokens exactly as jinja2's lexer does under the
// settings transformers uses (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): text between tags becomes kData tokens with
// the whitespace control ("-", "+", trim, lstrip) already applied, tags become
// begin/end tokens around name, literal and operator tokens. Comments vanish
// and {% raw %} bodies become plain data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lserve::jinja {

enum class TokenType : uint8_t {
  kData,
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,         // text holds the decoded value
  kInteger,
  kFloat,
  kOperator,       // text holds the operator: "+", "//", "==", "(", ...
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
};

// Fails with a syntax error naming the line on malformed input (unterminated
// tags, strings or comments, unbalanced brackets, unknown characters).
Result<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace lserve::jinja
