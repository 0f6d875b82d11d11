// GPT-2's byte-level alphabet: every byte is spelled as one printable
// character (bytes_to_unicode in openai/gpt-2 encoder.py): printable Latin-1
// bytes as themselves, the other 68 bytes as U+0100..U+0143 in byte order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lserve::byte_level {

char32_t ByteToChar(uint8_t b);
// -1 when `cp` is not in the alphabet.
int CharToByte(char32_t cp);

// Spells every byte of `bytes` as its alphabet character (UTF-8 result).
std::string BytesToChars(std::string_view bytes);
// Appends the bytes that `token` (well-formed UTF-8) spells when all of its
// characters are in the alphabet and returns true; otherwise appends nothing
// and returns false.
bool CharsToBytes(std::string_view token, std::string* out);

}  // namespace lserve::byte_level
