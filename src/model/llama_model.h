// LlamaModel: the Llama-family forward (Llama 2/3, Mistral, Qwen2, SmolLM2)
// over a ragged BatchPlan and the paged KV cache, on a Backend.
//
// One step, for the rows of all sequences of the plan together:
//   x = embed(tokens)
//   per layer:  h = rmsnorm(x); q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
//               q, k = rope(q, k, absolute positions)       (rotate-half)
//               kv_append(k, v) into the layer's pages       (keys after RoPE)
//               a = paged_attention(q, cache)                (each row sees keys 0..its position)
//               x = x + a Wo^T (+bo)
//               h = rmsnorm(x); x = x + (silu(h Wg^T) * h Wu^T) Wd^T
//   logits = rmsnorm(x) W_lm^T for the rows the plan asks for (W_lm = the
//            embedding table when the embeddings are tied)
//
// The caller owns page bookkeeping: before Forward, each sequence of the
// plan has been grown to start_pos + tokens in the KvCacheManager (and has
// begun decoding for a decode step); Forward checks this and never changes
// the manager. The manager must be built from kv_cache_config() (the layout
// of the storage this model holds).
//
// Dynamic-NTK RoPE: transformers recomputes inv_freq when a forward pass
// reaches past the longest length seen so far, from seq_len = that pass's
// largest position + 1, and keys cached by earlier passes keep their old
// rotation. Within one sequence, lengths only grow, so each pass of a
// sequence is rotated with the table for seq_len = start_pos + tokens of
// its step (the unscaled table while that is <= max_position_embeddings).
// This matches transformers' generate() with a KV cache (prompt pass, then
// one pass per token) for a sequence run from a fresh model; chunking a
// long prompt then changes results, as it does in transformers.
//
// Not thread-safe: one Forward at a time (it reuses its scratch buffers).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "formats/model_source.h"
#include "kvcache/batch_plan.h"
#include "kvcache/kv_cache.h"
#include "model/llama_weights.h"

namespace lserve {

struct ModelOptions {
  // KV storage (DESIGN.md §4): page size P, key-statistics page L, and the
  // capacity of the retrieval pool in tokens (rounded up to whole pages).
  // Every KV head is a retrieval head for now.
  int64_t kv_page_size = 64;
  int64_t kv_logical_page_size = 16;
  int64_t kv_cache_tokens = 4096;
  // Fill the KV storage with NaN at allocation so that a kernel reading a
  // slot that was never written poisons the outputs (tests); else zeros.
  bool poison_kv_cache = false;
};

// One row of logits: which step and position it belongs to.
struct LogitsRow {
  int64_t step = 0;      // index into BatchPlan::steps
  int64_t seq_id = 0;
  int64_t position = 0;  // absolute position of the token whose next-token logits these are
};

struct ForwardOutput {
  int64_t vocab = 0;
  std::vector<LogitsRow> rows;  // in plan order, positions ascending within a step
  std::vector<float> logits;    // [rows.size(), vocab] f32

  std::span<const float> row(size_t r) const {
    return {logits.data() + r * static_cast<size_t>(vocab), static_cast<size_t>(vocab)};
  }
};

class LlamaModel {
 public:
  // Checks the config, places the weights on `backend` (llama_weights.h),
  // computes the RoPE table (with GGUF `rope_freqs` when the file has one)
  // and allocates the KV storage. `source` may be dropped afterwards: the
  // weights keep what they view alive. The backend must outlive the model.
  static Result<std::unique_ptr<LlamaModel>> Load(const ModelSource& source, Backend& backend,
                                                  const ModelOptions& options = {});
  ~LlamaModel();

  const ModelConfig& config() const;
  const LlamaWeights& weights() const;
  Backend& backend() const;
  // The KV cache layout of this model's storage: build the KvCacheManager from it.
  const KvCacheConfig& kv_cache_config() const;
  // Bytes of KV storage on the backend.
  uint64_t kv_cache_bytes() const;

  // Runs one step (see above). `out` receives the logits the plan asks for
  // (cleared first). InvalidArgument for a plan that does not match the KV
  // cache (paged_batch.h ValidateBatchPlan), a token id outside the
  // vocabulary or a manager built from another config; errors of the
  // backend (e.g. ResourceExhausted for scratch memory) pass through. On an
  // error the KV storage of this step's positions may be partly written.
  Status Forward(const BatchPlan& plan, const KvCacheManager& kv, ForwardOutput* out);

 private:
  struct State;
  explicit LlamaModel(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace lserve
