// The output head: final RMSNorm and the lm_head projection, for the rows of
// a step that need logits only.
#pragma once

#include "backend/backend.h"
#include "core/status.h"
#include "model/forward_step.h"
#include "model/llama_weights.h"

namespace lserve {

// Precondition: rows 0 .. n_rows-1 of scratch.hidden hold the final hidden
// states of the wanted rows (the last layer compacted them), and the scratch
// has room for n_rows logit rows. Writes out->logits ([n_rows, vocab]) on the
// host; scratch.normed is clobbered.
Status ComputeLogits(Backend& backend, const LlamaWeights& w, const ModelDims& dims, ForwardScratch& scratch,
                     int64_t n_rows, ForwardOutput* out);

}  // namespace lserve
