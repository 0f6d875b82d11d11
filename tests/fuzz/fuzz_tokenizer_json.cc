// libFuzzer target: tokenizer.json + tokenizer_config.json
// (tokenizer/tokenizer.h), separated by the first NUL byte; a tokenizer that
// loads must encode and decode a fixed text without failing hard.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t nul = all.find('\0');
  const std::string_view tokenizer_json = all.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  auto tokenizer = lserve::Tokenizer::FromHfJson(tokenizer_json, config);
  if (!tokenizer.ok()) return 0;
  for (std::string_view text : {"Hello world, héllo 字! 123", "  \n\t", "<|endoftext|>a"}) {
    auto ids = tokenizer->Encode(text, true);
    if (ids.ok()) (void)tokenizer->Decode(*ids, /*skip_special_tokens=*/true);
  }
  return 0;
}
