// libFuzzer target: a safetensors file's header (formats/safetensors.h).
// Any input must give a header or an error: no crash, no overflow, no huge
// allocation (run with ASAN_OPTIONS=max_allocation_size_mb=1024).
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = lserve::ParseSafetensorsHeader(std::span<const uint8_t>(data, size));
  (void)header;
  return 0;
}
