// The RoPE frequency table of a model: inv_freq and attention_scaling exactly
// as transformers' modeling_rope_utils.py computes them (ROPE_INIT_FUNCTIONS),
// in the same f32 / f64 precision at each step, for the scaling types none,
// linear, llama3, dynamic (NTK) and yarn.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"

namespace lserve {

struct RopeTable {
  std::vector<float> inv_freq;    // [head_dim / 2]
  float attention_scaling = 1.0f;
};

// gguf_rope_freqs: the GGUF `rope_freqs.weight` tensor ([head_dim / 2] f32)
// when the file carries one (llama3-style scaling baked in by llama.cpp's
// converter), else null; each inv_freq[i] is divided by gguf_rope_freqs[i].
// seq_len: the number of positions the pass must serve (max position + 1);
// only the dynamic type depends on it, and only above
// max_position_embeddings (below it the table is the unscaled one).
// transformers keeps a dynamic table across passes (NextDynamicRopeSeqLen
// below gives the seq_len to build it for); keys cached by earlier passes
// keep the rotation they were given.
// InvalidArgument for a head_dim that is odd or zero, a non-positive theta
// or scaling parameters transformers would reject.
Result<RopeTable> ComputeRopeTable(const ModelConfig& config, const float* gguf_rope_freqs,
                                   int64_t seq_len);

// True when ComputeRopeTable's result depends on seq_len (dynamic scaling).
bool RopeTableDependsOnSeqLen(const ModelConfig& config);

// transformers' dynamic-NTK update rule (dynamic_rope_update): the table in
// use was built for cached_seq_len (max_position_embeddings at first); a pass
// whose max position + 1 is pass_seq_len uses a table built for the returned
// seq_len: pass_seq_len when it grows beyond cached_seq_len, back to
// max_position_embeddings when the pass fits below it again, else unchanged.
int64_t NextDynamicRopeSeqLen(int64_t cached_seq_len, int64_t pass_seq_len,
                              int64_t max_position_embeddings);

}  // namespace lserve
