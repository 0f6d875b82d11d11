// The RoPE frequency tables a model uses: one fixed table, or for dynamic
// NTK scaling one table per pass length (llama_model.h explains the rule).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "formats/model_source.h"
#include "kernels/ref/rope_table.h"

namespace lserve {

class RopeTables {
 public:
  // Reads GGUF `rope_freqs.weight` (llama3 factors baked in by llama.cpp's
  // converter) when the source is a GGUF file that has it: F32 [head_dim / 2].
  static Result<RopeTables> Create(const ModelSource& source);

  // True when the table depends on the length of the pass (dynamic NTK).
  bool depends_on_length() const { return dynamic_; }
  // The table for a pass of a sequence whose tokens end at `seq_len`
  // (= largest position + 1). Returns the fixed table unless dynamic.
  Result<RopeTable> ForSeqLen(int64_t seq_len) const;
  const std::vector<float>& gguf_rope_freqs() const { return gguf_freqs_; }

 private:
  ModelConfig config_;
  std::vector<float> gguf_freqs_;  // empty when absent
  bool dynamic_ = false;
  RopeTable fixed_;
};

}  // namespace lserve
