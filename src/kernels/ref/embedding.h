// Embedding lookup: out[i, :] = table[ids[i], :] converted to f32.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lserve {

struct EmbeddingParams {
  const void* table;     // [vocab, hidden] of `dtype`; quantized rows are whole blocks along hidden
  DType dtype;           // F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K or Q6_K (EmbeddingSupports)
  int64_t vocab, hidden;
  const int32_t* ids;    // [n]; precondition: 0 <= ids[i] < vocab (the caller validates token ids)
  int64_t n;
  float* out;            // [n, hidden] f32
};

// True when EmbeddingRef/EmbeddingCpu accept a table of `dtype` with rows of
// `hidden` elements (hidden a whole number of blocks for quantized types).
bool EmbeddingSupports(DType dtype, int64_t hidden);

void EmbeddingRef(const EmbeddingParams& p);

}  // namespace lserve
