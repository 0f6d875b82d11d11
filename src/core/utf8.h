// UTF-8 helpers shared by the tokenizer, the detokenizer and the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lserve::utf8 {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValid(std::string_view s);

// Length of the longest prefix of `s` that ends on a character boundary and
// does not cut an incomplete (but possibly still completable) sequence at the
// end. Invalid bytes count as complete (they will be replaced, not waited on).
size_t CompletePrefixLength(std::string_view s);

// Decodes one code point at s[i]; on malformed input returns U+FFFD and
// consumes one byte. `*len` receives the number of bytes consumed.
char32_t DecodeOne(std::string_view s, size_t i, size_t* len);

// Appends the UTF-8 encoding of `cp` (U+FFFD for invalid code points).
void Append(std::string* out, char32_t cp);

// Replaces every malformed sequence by U+FFFD, as Python's
// bytes.decode("utf-8", errors="replace") does (maximal subpart rule).
std::string Sanitize(std::string_view s);

}  // namespace lserve::utf8
