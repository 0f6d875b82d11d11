#include "core/utf8.h"

namespace lserve::utf8 {
namespace {

// For a lead byte, the expected sequence length and the valid range of the
// second byte (the rest are always 80..BF). Returns 0 for an invalid lead.
int SequenceInfo(uint8_t b0, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b0 < 0x80) return 1;
  if (b0 < 0xC2) return 0;
  if (b0 < 0xE0) return 2;
  if (b0 < 0xF0) {
    if (b0 == 0xE0) *lo = 0xA0;
    if (b0 == 0xED) *hi = 0x9F;  // no surrogates
    return 3;
  }
  if (b0 < 0xF5) {
    if (b0 == 0xF0) *lo = 0x90;
    if (b0 == 0xF4) *hi = 0x8F;  // <= U+10FFFF
    return 4;
  }
  return 0;
}

// Number of bytes starting at s[i] that form a valid (possibly incomplete)
// prefix of a sequence of length `need`. Returns `need` for a full sequence.
size_t ValidPrefix(std::string_view s, size_t i, int need, uint8_t lo, uint8_t hi) {
  size_t k = 1;
  while (k < static_cast<size_t>(need) && i + k < s.size()) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t l = (k == 1) ? lo : 0x80;
    const uint8_t h = (k == 1) ? hi : 0xBF;
    if (b < l || b > h) break;
    ++k;
  }
  return k;
}

}  // namespace

char32_t DecodeOne(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  uint8_t lo, hi;
  const int need = SequenceInfo(b0, &lo, &hi);
  if (need == 1) {
    *len = 1;
    return b0;
  }
  if (need == 0) {
    *len = 1;
    return 0xFFFD;
  }
  const size_t k = ValidPrefix(s, i, need, lo, hi);
  *len = k;
  if (k < static_cast<size_t>(need)) return 0xFFFD;
  char32_t cp = b0 & (0x7F >> need);
  for (int j = 1; j < need; ++j) cp = (cp << 6) | (static_cast<uint8_t>(s[i + j]) & 0x3F);
  return cp;
}

bool IsValid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len;
    const char32_t cp = DecodeOne(s, i, &len);
    if (cp == 0xFFFD && !(len == 3 && s.substr(i, 3) == "\xEF\xBF\xBD")) return false;
    i += len;
  }
  return true;
}

size_t CompletePrefixLength(std::string_view s) {
  // Only the last (up to 3) bytes can be an incomplete-but-completable tail.
  const size_t n = s.size();
  const size_t start = n >= 3 ? n - 3 : 0;
  for (size_t i = start; i < n; ++i) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if ((b0 & 0xC0) == 0x80) continue;  // continuation byte
    uint8_t lo, hi;
    const int need = SequenceInfo(b0, &lo, &hi);
    if (need <= 1) continue;
    const size_t k = ValidPrefix(s, i, need, lo, hi);
    // Incomplete only if the valid prefix runs to the very end of the buffer.
    if (k < static_cast<size_t>(need) && i + k == n) return i;
  }
  return n;
}

void Append(std::string* out, char32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t len;
    const char32_t cp = DecodeOne(s, i, &len);
    if (cp == 0xFFFD)
      Append(&out, cp);
    else
      out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace lserve::utf8
