// libFuzzer target: a GGUF file (formats/gguf.h) and, when it parses, the
// model description and tokenizer read from its metadata.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = lserve::GgufFile::Parse(std::span<const uint8_t>(data, size));
  if (!file.ok()) return 0;
  auto model = lserve::LoadGgufModel(*file);
  (void)model;
  auto tokenizer = lserve::Tokenizer::FromGguf(**file);
  if (tokenizer.ok()) {
    auto ids = tokenizer->Encode("Hello world, héllo 字! 123", true);
    if (ids.ok()) (void)tokenizer->Decode(*ids);
  }
  return 0;
}
