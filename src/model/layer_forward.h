// One transformer block of the Llama family over the rows of a step
// (llama_model.h gives the equations).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "model/forward_step.h"
#include "model/kv_storage.h"
#include "model/llama_weights.h"
#include "model/page_selection.h"

namespace lserve {

struct LayerContext {
  Backend& backend;
  const ModelDims& dims;
  const StepInputs& in;
  const StepArrays& arrays;
  ForwardScratch& scratch;
  const KvStorage& kv;
  // Sparse steps (in.sparse): the decode rows' selector actions and the
  // lists kept between steps.
  const std::vector<SelectionAction>* selections = nullptr;
  const PageSelectionStore* store = nullptr;
  int64_t max_pages = 0;  // K
  AttentionProbe* probe = nullptr;  // dense steps only (llama_model.h)
};

// Runs block `layer` on scratch.hidden ([in.rows, hidden], updated in place):
// appends the rows' K/V to the layer's pages (both pools), attends (the dense
// paged kernel, or the sparse kernel with page selection for sparse steps),
// applies the MLP.
//
// keep_rows (the last layer): after attention only these rows (ascending)
// are carried on; they are moved to rows 0 .. keep_rows.size()-1 of
// scratch.hidden, so the rest of the block runs on those rows alone (the
// other rows' outputs would not be read). nullptr = all rows.
Status RunLlamaLayer(const LayerContext& ctx, const LlamaLayerWeights& w, int64_t layer,
                     const std::vector<int64_t>* keep_rows);

// A linear layer on the backend: y[m, out] = x[m, in] W^T (+ b).
Status RunLinear(Backend& backend, const LinearWeights& w, const float* x, float* y, int64_t m);

// Moves rows `rows` (ascending) of a [*, width] f32 buffer to rows 0, 1, ...
Status CompactRows(Backend& backend, const DeviceBuffer& buf, int64_t width, const std::vector<int64_t>& rows);

}  // namespace lserve
