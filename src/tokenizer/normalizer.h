// Normalizers of tokenizer.json ("normalizer": {...}), with the semantics of
// tokenizers/src/normalizers. Offsets are not tracked; the only alignment
// fact the pipeline needs (does the text still start at the original
// offset 0, for Metaspace's prepend_scheme "first") is kept in `at_origin`.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace lserve {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (well-formed UTF-8, stays so). Sets `*at_origin` to false
  // when the first original character was removed.
  virtual Status Normalize(std::string* text, bool* at_origin) const = 0;
};

// Builds a normalizer from its tokenizer.json object. Unsupported types
// (Precompiled, BertNormalizer) give Unimplemented.
Result<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& spec, int depth = 0);

// Sequences of components may nest this deep (a hostile file cannot
// exhaust the stack).
inline constexpr int kMaxComponentNesting = 16;

// The {"String": ...} / {"Regex": ...} "pattern" member of Split and Replace.
Result<Regex> ParseSplitPattern(const nlohmann::json& spec, std::string_view where);

}  // namespace lserve
