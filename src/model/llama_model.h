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

enum class AttentionMode : uint8_t {
  kDense,   // every head attends to every cached key (the paged dense kernel)
  kLServe,  // DESIGN.md §4: streaming heads, block-sparse prefill, page selection in decode
};
const char* AttentionModeName(AttentionMode mode);  // "dense", "lserve"

// The LServe attention of DESIGN.md §4 (used when mode == kLServe).
struct AttentionOptions {
  AttentionMode mode = AttentionMode::kDense;
  // roles[layer][kv_head]: 1 = retrieval, 0 = streaming (sparsity/head_roles.h);
  // empty: every head a retrieval head.
  std::vector<std::vector<int>> head_roles = {};
  // Streaming heads' windows in tokens (local counts the query itself).
  int64_t prefill_sink = 128;
  int64_t prefill_local = 8192;
  int64_t decode_sink = 128;
  int64_t decode_local = 256;
  // Retrieval heads in decode: dense while the sequence holds at most
  // token_budget tokens, else token_budget / P pages chosen by the page
  // selector, recomputed every select_interval decode steps (and whenever the
  // newest page changes), the newest page always included.
  int64_t token_budget = 4096;
  int64_t select_interval = 4;
};

struct ModelOptions {
  // KV storage (DESIGN.md §4): page size P, key-statistics page L, and the
  // capacity of the retrieval pool in tokens (rounded up to whole pages).
  int64_t kv_page_size = 64;
  int64_t kv_logical_page_size = 16;
  int64_t kv_cache_tokens = 4096;
  // Sequences whose streaming rings the streaming pool holds at once (all at
  // the decode width, two of them at the prefill width), and the longest
  // prefill chunk (a step of one sequence) the rings are sized for.
  int64_t max_sequences = 1;
  int64_t prefill_chunk = 512;
  AttentionOptions attention = {};
  // Fill the KV storage with NaN at allocation so that a kernel reading a
  // slot that was never written poisons the outputs (tests); else zeros.
  bool poison_kv_cache = false;
};

// Pages the attention of a step read, summed over layers, rows and KV heads
// (kernels/ref/sparse_attention.h counters); "dense" is what dense causal
// attention would read. Prefill rows and decode rows apart.
struct SparsityStats {
  int64_t prefill_blocks_visited = 0;
  int64_t prefill_blocks_dense = 0;
  int64_t decode_pages_read = 0;
  int64_t decode_pages_dense = 0;
  SparsityStats& operator+=(const SparsityStats& o) {
    prefill_blocks_visited += o.prefill_blocks_visited;
    prefill_blocks_dense += o.prefill_blocks_dense;
    decode_pages_read += o.decode_pages_read;
    decode_pages_dense += o.decode_pages_dense;
    return *this;
  }
};

// One row of logits: which step and position it belongs to.
struct LogitsRow {
  int64_t step = 0;      // index into BatchPlan::steps
  int64_t seq_id = 0;
  int64_t position = 0;  // absolute position of the token whose next-token logits these are
};

// Calibration probe (`lserve calibrate`, DESIGN.md §4 "Head roles"): during
// a forward, for every query row at a position >= min_position and every
// (layer, KV head), the share of the row's attention mass (softmax over all
// its causal keys) that a Λ window of `sink` + `local` tokens keeps, averaged
// over the query heads of the GQA group: exp(lse_window - lse_full). The
// probe adds the shares up; the forward's own outputs do not change.
struct AttentionProbe {
  int64_t sink = 128;
  int64_t local = 256;
  int64_t min_position = 0;
  std::vector<double> kept_mass = {};  // [layers * kv_heads] sums over the counted rows
  int64_t rows = 0;                    // rows counted (the same for every head)
};

struct ForwardOutput {
  int64_t vocab = 0;
  std::vector<LogitsRow> rows;  // in plan order, positions ascending within a step
  std::vector<float> logits;    // [rows.size(), vocab] f32
  SparsityStats sparsity;       // of this step

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
  const AttentionOptions& attention() const;
  // Bytes of KV storage (K, V and key statistics, all layers) one physical
  // page of `pool` stands for (0 for a pool without heads).
  uint64_t kv_bytes_per_page(KvPool pool) const;

  // Runs one step (see above). `out` receives the logits the plan asks for
  // (cleared first). InvalidArgument for a plan that does not match the KV
  // cache (paged_batch.h ValidateBatchPlan), a token id outside the
  // vocabulary or a manager built from another config; errors of the
  // backend (e.g. ResourceExhausted for scratch memory) pass through. On an
  // error the KV storage of this step's positions may be partly written.
  // `probe` (nullable): see AttentionProbe; dense attention only.
  Status Forward(const BatchPlan& plan, const KvCacheManager& kv, ForwardOutput* out,
                 AttentionProbe* probe = nullptr);

 private:
  struct State;
  explicit LlamaModel(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace lserve
