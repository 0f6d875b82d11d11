// Decoders of tokenizer.json ("decoder": {...}), with the semantics of
// tokenizers/src/decoders: a chain that turns token strings back into text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace lserve {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // One step of the chain (decode_chain): rewrites the token strings.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// What the incremental decoder must know about a chain to stream it exactly.
struct DecoderTraits {
  // ByteFallback joins runs of <0xXX> tokens: a run's text is only known
  // once the run ends.
  bool byte_fallback = false;
  // ByteLevel decodes the concatenated bytes lossily: a trailing incomplete
  // UTF-8 sequence may still be completed by the next token.
  bool byte_level = false;
};

// Strip decoders with stop > 0 (never used by the supported families) and
// WordPiece/CTC give Unimplemented.
Result<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& spec, DecoderTraits* traits,
                                              int depth = 0);

// Runs `decoder` (or joins with spaces when there is none, as the crate
// does) and concatenates the result.
std::string RunDecoder(const Decoder* decoder, std::vector<std::string> tokens);

// The byte that a ByteFallback token "<0xXX>" stands for, parsed as the
// crate does (u8::from_str_radix on the two characters), or -1.
int ByteFallbackValue(std::string_view token);

// The bytes the ByteLevel decoder makes of one token: its alphabet bytes,
// or its own UTF-8 when a character is outside the alphabet.
void AppendByteLevelBytes(std::string_view token, std::string* out);

}  // namespace lserve
