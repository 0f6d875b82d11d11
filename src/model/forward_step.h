// The pieces of one forward step that are not the transformer block itself:
// the model's dimensions, the host-side inputs derived from a BatchPlan, the
// scratch buffers on the backend and the upload of the step's index arrays.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "formats/model_config.h"
#include "kvcache/batch_plan.h"
#include "kvcache/kv_cache.h"
#include "kvcache/paged_batch.h"
#include "model/llama_model.h"
#include "model/rope_tables.h"

namespace lserve {

struct ModelDims {
  int64_t vocab = 0, hidden = 0, inter = 0, layers = 0;
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
  float rms_eps = 0.0f;

  int64_t q_dim() const { return q_heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }
  static ModelDims FromConfig(const ModelConfig& c);
};

// Rows [row_begin, row_end) are rotated with rope table `table`.
struct RopeGroup {
  int64_t row_begin = 0, row_end = 0, table = 0;
};

// Everything a step needs that is computed on the host before any kernel.
// Rows are the tokens of all steps in plan order.
struct StepInputs {
  int64_t rows = 0;
  std::vector<int32_t> token_ids;  // [rows]
  PagedBatch batch;                // retrieval pool: positions, slots, page tables
  std::vector<uint8_t> seq_decode; // [seqs] 1 = a decode step
  // Sparse attention only (AttentionMode::kLServe).
  bool sparse = false;
  PagedBatch stream;                  // streaming pool (when some head streams): slots, rings
  std::vector<int64_t> seq_sink;      // [seqs] streaming window of each sequence's rows
  std::vector<int64_t> seq_local;     // [seqs]
  std::vector<int64_t> n_selected;    // [seqs * kv_heads] -1 (dense) before the selector runs
  std::vector<RopeTable> rope_tables;
  std::vector<RopeGroup> rope_groups;  // cover [0, rows) in order
  std::vector<int64_t> logit_rows;     // ascending rows whose logits the plan wants
  std::vector<LogitsRow> logit_info;   // [logit_rows.size()]
};

// Validates the plan against the cache (ValidateBatchPlan) and the token ids
// against the vocabulary, then flattens it.
Result<StepInputs> BuildStepInputs(const BatchPlan& plan, const KvCacheManager& kv, const ModelDims& dims,
                                   const RopeTables& rope, bool sparse);

// The step's index arrays on the device (views into ForwardScratch::meta).
struct StepArrays {
  const int32_t* token_ids = nullptr;         // [rows]
  const int64_t* positions = nullptr;         // [rows]
  const int32_t* slot_page = nullptr;         // [rows]
  const int32_t* slot_offset = nullptr;       // [rows]
  const int64_t* q_start = nullptr;           // [seqs + 1]
  const int64_t* q_pos0 = nullptr;            // [seqs]
  const int64_t* kv_len = nullptr;            // [seqs]
  const int32_t* page_table = nullptr;        // [page_table_start[seqs]]
  const int64_t* page_table_start = nullptr;  // [seqs + 1]
  const float* inv_freq = nullptr;            // [tables, head_dim / 2]
  // Sparse steps only.
  const int32_t* stream_slot_page = nullptr;         // [rows]
  const int32_t* stream_slot_offset = nullptr;       // [rows]
  const int32_t* stream_page_table = nullptr;        // rings, slot order
  const int64_t* stream_page_table_start = nullptr;  // [seqs + 1]
  const int64_t* ring_pages = nullptr;               // [seqs]
  const int64_t* seq_sink = nullptr;                 // [seqs]
  const int64_t* seq_local = nullptr;                // [seqs]
};

// Activation buffers sized for a number of rows, grown (never shrunk) when a
// larger step arrives: once per step size, not per layer.
class ForwardScratch {
 public:
  int64_t row_capacity = 0;
  int64_t logit_capacity = 0;
  DeviceBuffer hidden;  // [rows, hidden]  the residual stream
  DeviceBuffer normed;  // [rows, hidden]
  DeviceBuffer q;       // [rows, q_dim]
  DeviceBuffer k, v;    // [rows, kv_dim]
  DeviceBuffer attn;    // [rows, q_dim]
  DeviceBuffer proj;    // [rows, hidden]  o_proj / down_proj output
  DeviceBuffer gate;    // [rows, inter]   gate, then silu(gate) * up
  DeviceBuffer up;      // [rows, inter]
  DeviceBuffer logits;  // [logit rows, vocab]
  DeviceBuffer meta;    // the step's index arrays (StepArrays)
  // Sparse steps: the page lists of the decode rows for the layer being run,
  // and the per-sequence counters of the step.
  DeviceBuffer selected;      // [seqs, kv_heads, max pages] int32
  DeviceBuffer n_selected;    // [seqs, kv_heads] int64
  DeviceBuffer seq_counters;  // [seqs] SparseAttentionCounters

  // Room for `rows` activation rows and `logit_rows` rows of logits. On an
  // error every buffer is released (capacities back to 0).
  Status Reserve(Backend& backend, const ModelDims& dims, int64_t rows, int64_t logit_rows);

 private:
  Status Grow(Backend& backend, const ModelDims& dims, int64_t rows, int64_t logit_rows);
};

// Packs the step's arrays into scratch.meta (growing it if needed) with one
// copy to the device; for a sparse step also sizes and initialises the
// selection lists (max_pages per list) and zeroes the counters.
Result<StepArrays> UploadStepInputs(Backend& backend, const StepInputs& in, const ModelDims& dims,
                                    int64_t max_pages, ForwardScratch& scratch);

}  // namespace lserve
