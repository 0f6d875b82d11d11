// Unicode character properties and normalization forms, with the semantics
// the Hugging Face `tokenizers` crate gets from Rust's std and its Unicode
// crates (tables generated from Python's unicodedata, see unicode_tables.h).
// All functions taking UTF-8 expect well-formed input (the tokenizer checks
// it once, at its edge).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lserve::unicode {

// Indexes match the category list of tools/unicode/gen_unicode_tables.py.
enum class GeneralCategory : uint8_t {
  kLu, kLl, kLt, kLm, kLo, kMn, kMc, kMe, kNd, kNl, kNo, kPc, kPd, kPs, kPe,
  kPi, kPf, kPo, kSm, kSc, kSk, kSo, kZs, kZl, kZp, kCc, kCf, kCs, kCo, kCn,
};

GeneralCategory CategoryOf(char32_t cp);
uint8_t CombiningClass(char32_t cp);

// Rust char::is_whitespace: the White_Space property.
bool IsWhitespace(char32_t cp);
// Rust char::is_numeric: categories Nd, Nl, No.
bool IsNumeric(char32_t cp);
// Rust regex `\w`: Alphabetic, marks, Nd, Pc and Join_Control.
bool IsWordChar(char32_t cp);
// tokenizers' Punctuation pre-tokenizer: ASCII punctuation or a P* category.
bool IsPunctuation(char32_t cp);
// General category M* (unicode-normalization's is_combining_mark).
bool IsCombiningMark(char32_t cp);

enum class NormalizationForm { kNFC, kNFD, kNFKC, kNFKD };
std::string Normalize(std::string_view utf8, NormalizationForm form);

// Full lowercase mapping per character (Rust char::to_lowercase, no context).
std::string Lowercase(std::string_view utf8);

// Decodes one code point of well-formed UTF-8 at s[*i] and advances *i.
inline char32_t NextCodePoint(std::string_view s, size_t* i) {
  const auto b0 = static_cast<uint8_t>(s[*i]);
  if (b0 < 0x80) {
    *i += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t cp = ((b0 & 0x1F) << 6) | (static_cast<uint8_t>(s[*i + 1]) & 0x3F);
    *i += 2;
    return cp;
  }
  if (b0 < 0xF0) {
    const char32_t cp = ((b0 & 0x0F) << 12) | ((static_cast<uint8_t>(s[*i + 1]) & 0x3F) << 6) |
                        (static_cast<uint8_t>(s[*i + 2]) & 0x3F);
    *i += 3;
    return cp;
  }
  const char32_t cp = ((b0 & 0x07) << 18) | ((static_cast<uint8_t>(s[*i + 1]) & 0x3F) << 12) |
                      ((static_cast<uint8_t>(s[*i + 2]) & 0x3F) << 6) |
                      (static_cast<uint8_t>(s[*i + 3]) & 0x3F);
  *i += 4;
  return cp;
}

// Byte length of the UTF-8 sequence that starts with lead byte `b0`.
inline size_t SequenceLength(uint8_t b0) {
  return b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
}

// The last code point of non-empty well-formed UTF-8.
char32_t LastCodePoint(std::string_view s);
char32_t FirstCodePoint(std::string_view s);

}  // namespace lserve::unicode
