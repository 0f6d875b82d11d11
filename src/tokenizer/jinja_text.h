// Text helpers with Python's str semantics for the chat-template engine:
// strings are UTF-8 bytes, but lengths, indices and slices count code points,
// and whitespace/case follow Python's str methods (str.strip() removes U+00A0
// and U+3000, 'ß'.upper() is 'SS'). Case mapping covers Latin, Greek,
// Cyrillic and Armenian; other scripts are left unchanged (they have no case
// or are rare in templates).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lserve::jinja {

// Python str.isspace() for one code point.
bool IsPySpace(char32_t cp);
// Python's str.splitlines() boundaries (\n \r \v \f \x1c-\x1e \x85 U+2028 U+2029).
bool IsPyLineBreak(char32_t cp);
// Python's str.isalnum()/\w approximations: letters of the cased scripts,
// CJK ideographs, kana, Hangul and other non-ASCII letters are "alpha".
bool IsPyAlpha(char32_t cp);
bool IsPyDigit(char32_t cp);
bool IsPyUpper(char32_t cp);
bool IsPyLower(char32_t cp);

// Code points of `s` (malformed bytes decode to U+FFFD, one byte each).
std::u32string DecodeCodePoints(std::string_view s);
std::string EncodeCodePoints(std::u32string_view cps);
size_t CodePointCount(std::string_view s);
// Byte offset of each code point, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(std::string_view s);

enum class StripSide { kBoth, kLeft, kRight };
// str.strip()/lstrip()/rstrip(): with chars == nullptr strips Python
// whitespace, otherwise any code point found in *chars.
std::string PyStrip(std::string_view s, StripSide side, const std::string* chars);

std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
// str.title(): a cased letter after an uncased character starts a word.
std::string PyTitle(std::string_view s);
// str.capitalize(): first character upper (title) case, the rest lower.
std::string PyCapitalize(std::string_view s);
std::string PySwapCase(std::string_view s);

// str.splitlines(keepends=False).
std::vector<std::string> PySplitLines(std::string_view s);
// str.split() with no separator: runs of whitespace separate, ends ignored.
// max_split < 0 means no limit.
std::vector<std::string> PySplitWhitespace(std::string_view s, int64_t max_split);
std::vector<std::string> PyRSplitWhitespace(std::string_view s, int64_t max_split);

// Appends Python's backslash escape of a code point: \xNN below 0x100,
// \uNNNN below 0x10000, else \UNNNNNNNN (as repr() and backslashreplace
// write it).
void AppendPyHexEscape(char32_t cp, std::string* out);

// Python repr() of a str: picks ' or " as Python does and escapes
// non-printable code points as \xNN, \uNNNN or \UNNNNNNNN.
std::string PyStrRepr(std::string_view s);

// Python repr() of a float: shortest round-trip digits, "1e+16" style
// exponents outside [1e-4, 1e16), "inf", "nan", always a '.' or exponent.
std::string PyFloatRepr(double value);

// HTML escaping as markupsafe.escape does (& < > ' ").
std::string HtmlEscape(std::string_view s);

}  // namespace lserve::jinja
