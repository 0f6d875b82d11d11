// Post-processors of tokenizer.json ("post_processor": {...}): they add the
// special tokens (BOS, EOS, CLS/SEP) around an encoded sequence when
// add_special_tokens is true. Only single sequences are encoded by lserve,
// so only the "single" template matters. ByteLevel only trims offsets and
// leaves ids alone.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace lserve {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Replaces `ids` (the encoded sequence) by the processed sequence.
  virtual void Process(std::vector<int32_t>* ids, bool add_special_tokens) const = 0;
};

// `id_limit` bounds the ids the post-processor may insert (ids >= limit are
// an error: they would index past the embedding table).
Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const nlohmann::json& spec, int64_t id_limit,
                                                          int depth = 0);

// TemplateProcessing as transformers' update_post_processor() builds it:
// [bos] $A [eos]. A null id means "not added".
std::unique_ptr<PostProcessor> MakeBosEosProcessor(std::optional<int32_t> bos, std::optional<int32_t> eos);

}  // namespace lserve
