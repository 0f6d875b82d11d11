// libFuzzer target: config.json and generation_config.json
// (formats/hf_config.h). The input is the two documents separated by the
// first NUL byte (no NUL: config.json only).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "formats/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t nul = all.find('\0');
  const std::string_view config = all.substr(0, nul);
  const std::string_view generation = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  auto parsed = lserve::ParseHfConfig(config, generation);
  (void)parsed;
  return 0;
}
