#include "tokenizer/byte_level.h"

#include <array>

#include "core/utf8.h"
#include "tokenizer/unicode.h"

namespace lserve::byte_level {
namespace {

struct Alphabet {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 0x144> char_to_byte{};  // indexed by code point < U+0144
  std::array<std::string, 256> byte_to_utf8;

  Alphabet() {
    char_to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
    }
    for (int b = 0; b < 256; ++b) {
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
      utf8::Append(&byte_to_utf8[b], byte_to_char[b]);
    }
  }
};

const Alphabet& TheAlphabet() {
  static const Alphabet alphabet;
  return alphabet;
}

}  // namespace

char32_t ByteToChar(uint8_t b) { return TheAlphabet().byte_to_char[b]; }

int CharToByte(char32_t cp) {
  return cp < 0x144 ? TheAlphabet().char_to_byte[cp] : -1;
}

std::string BytesToChars(std::string_view bytes) {
  const Alphabet& a = TheAlphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += a.byte_to_utf8[static_cast<uint8_t>(c)];
  return out;
}

bool CharsToBytes(std::string_view token, std::string* out) {
  const size_t mark = out->size();
  size_t i = 0;
  while (i < token.size()) {
    const int b = CharToByte(unicode::NextCodePoint(token, &i));
    if (b < 0) {
      out->resize(mark);
      return false;
    }
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace lserve::byte_level
