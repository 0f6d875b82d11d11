#include "model/layer_forward.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lserve {

Status RunLinear(Backend& backend, const LinearWeights& w, const float* x, float* y, int64_t m) {
  return backend.Linear(LinearParams{.x = x,
                                     .w = w.weight.data(),
                                     .w_dtype = w.weight.dtype,
                                     .bias = w.bias.present() ? w.bias.data() : nullptr,
                                     .bias_dtype = w.bias.dtype,
                                     .y = y,
                                     .m = m,
                                     .n = w.out_features(),
                                     .k = w.in_features()});
}

Status CompactRows(Backend& backend, const DeviceBuffer& buf, int64_t width, const std::vector<int64_t>& rows) {
  const uint64_t row_bytes = static_cast<uint64_t>(width) * sizeof(float);
  // Ascending sources: row i moves to i <= rows[i], so an earlier move never
  // overwrites a later source.
  for (size_t i = 0; i < rows.size(); ++i) {
    const uint64_t src = static_cast<uint64_t>(rows[i]);
    if (src == i) continue;
    LSERVE_RETURN_IF_ERROR(backend.CopyOnDevice(buf, i * row_bytes, buf, src * row_bytes, row_bytes));
  }
  return Status::Ok();
}

namespace {

Status AppendKv(const LayerContext& ctx, const KvPoolStorage& pool, const int32_t* slot_page,
                const int32_t* slot_offset) {
  if (pool.n_heads == 0) return Status::Ok();
  const ModelDims& d = ctx.dims;
  const KvCacheConfig& c = ctx.kv.config();
  return ctx.backend.KvAppend(KvAppendParams{.k = ctx.scratch.k.as<const float>(),
                                             .v = ctx.scratch.v.as<const float>(),
                                             .n_tokens = ctx.in.rows,
                                             .n_kv_heads = d.kv_heads,
                                             .head_dim = d.head_dim,
                                             .pool_heads = pool.heads.as<const int32_t>(),
                                             .n_pool_heads = pool.n_heads,
                                             .k_cache = pool.k.as<float>(),
                                             .v_cache = pool.v.as<float>(),
                                             .page_size = c.page_size,
                                             .slot_page = slot_page,
                                             .slot_offset = slot_offset,
                                             .k_stats = pool.stats.as<float>(),
                                             .logical_page_size = c.logical_page_size,
                                             .positions = ctx.arrays.positions});
}

float AttentionScale(const ModelDims& d) { return 1.0f / std::sqrt(static_cast<float>(d.head_dim)); }

// The sparse-attention call of layer `layer` over the step's rows with the
// retrieval pool `r` and no streaming pool, selection or counters; callers
// add what they use.
SparseAttentionParams RetrievalSparseParams(const LayerContext& ctx, int64_t layer, const KvPoolStorage& r) {
  const ModelDims& d = ctx.dims;
  const StepArrays& a = ctx.arrays;
  const KvLayerHeads& heads = ctx.kv.heads(layer);
  return SparseAttentionParams{.q = ctx.scratch.q.as<const float>(),
                               .out = ctx.scratch.attn.as<float>(),
                               .lse = nullptr,
                               .n_q_heads = d.q_heads,
                               .n_kv_heads = d.kv_heads,
                               .head_dim = d.head_dim,
                               .scale = AttentionScale(d),
                               .n_seqs = ctx.in.batch.num_seqs,
                               .q_start = a.q_start,
                               .q_pos0 = a.q_pos0,
                               .kv_len = a.kv_len,
                               .page_size = ctx.kv.config().page_size,
                               .head_mode = heads.head_mode.as<const int8_t>(),
                               .pool_slot = heads.pool_slot.as<const int32_t>(),
                               .page_table_r = a.page_table,
                               .page_table_start_r = a.page_table_start,
                               .k_cache_r = r.k.as<const float>(),
                               .v_cache_r = r.v.as<const float>(),
                               .n_retrieval_heads = r.n_heads,
                               .selected_pages = nullptr,
                               .n_selected = nullptr,
                               .max_selected = 0,
                               .page_table_s = nullptr,
                               .page_table_start_s = nullptr,
                               .k_cache_s = nullptr,
                               .v_cache_s = nullptr,
                               .n_streaming_heads = 0,
                               .stream_sink_pages = 0,
                               .stream_ring_pages = 0,
                               .sink = 0,
                               .local = 0,
                               .seq_sink = nullptr,
                               .seq_local = nullptr,
                               .seq_ring_pages = nullptr,
                               .counters = nullptr,
                               .seq_counters = nullptr};
}

Status AttendDense(const LayerContext& ctx, const KvPoolStorage& pool) {
  const ModelDims& d = ctx.dims;
  const StepArrays& a = ctx.arrays;
  return ctx.backend.PagedAttention(PagedAttentionParams{.q = ctx.scratch.q.as<const float>(),
                                                         .out = ctx.scratch.attn.as<float>(),
                                                         .lse = nullptr,
                                                         .n_q_heads = d.q_heads,
                                                         .n_kv_heads = d.kv_heads,
                                                         .head_dim = d.head_dim,
                                                         .scale = AttentionScale(d),
                                                         .n_seqs = ctx.in.batch.num_seqs,
                                                         .q_start = a.q_start,
                                                         .q_pos0 = a.q_pos0,
                                                         .kv_len = a.kv_len,
                                                         .page_table = a.page_table,
                                                         .page_table_start = a.page_table_start,
                                                         .k_cache = pool.k.as<const float>(),
                                                         .v_cache = pool.v.as<const float>(),
                                                         .page_size = ctx.kv.config().page_size,
                                                         .pool_head_of_kv_head = 0});
}

// The decode rows' page lists of this layer into scratch.selected /
// scratch.n_selected: the selector's output (kept for later steps) or the
// kept lists of the last selection.
Status PrepareSelections(const LayerContext& ctx, int64_t layer, const KvPoolStorage& retrieval) {
  if (ctx.selections == nullptr || ctx.selections->empty() || retrieval.n_heads == 0) return Status::Ok();
  Backend& be = ctx.backend;
  const ModelDims& d = ctx.dims;
  const StepArrays& a = ctx.arrays;
  const KvLayerHeads& heads = ctx.kv.heads(layer);
  const uint64_t list_bytes = static_cast<uint64_t>(d.kv_heads * ctx.max_pages) * sizeof(int32_t);
  const uint64_t count_bytes = static_cast<uint64_t>(d.kv_heads) * sizeof(int64_t);
  for (const SelectionAction& act : *ctx.selections) {
    const int64_t s = act.step;
    const uint64_t step_list = static_cast<uint64_t>(s) * list_bytes;
    const uint64_t step_count = static_cast<uint64_t>(s) * count_bytes;
    const uint64_t kept_list = static_cast<uint64_t>(layer) * list_bytes;
    const uint64_t kept_count = static_cast<uint64_t>(layer) * count_bytes;
    const DeviceBuffer& kept_pages = ctx.store->pages(act.seq_id);
    const DeviceBuffer& kept_counts = ctx.store->counts(act.seq_id);
    if (!act.select) {
      LSERVE_RETURN_IF_ERROR(be.CopyOnDevice(ctx.scratch.selected, step_list, kept_pages, kept_list, list_bytes));
      LSERVE_RETURN_IF_ERROR(be.CopyOnDevice(ctx.scratch.n_selected, step_count, kept_counts, kept_count, count_bytes));
      continue;
    }
    const int64_t row = ctx.in.batch.q_start[static_cast<size_t>(s)];
    LSERVE_RETURN_IF_ERROR(be.SelectPages(PageSelectorParams{
        .q = ctx.scratch.q.as<const float>() + row * d.q_dim(),
        .n_q_heads = d.q_heads,
        .n_kv_heads = d.kv_heads,
        .head_dim = d.head_dim,
        .n_seqs = 1,
        .kv_len = a.kv_len + s,
        .head_mode = heads.head_mode.as<const int8_t>(),
        .pool_slot = heads.pool_slot.as<const int32_t>(),
        .page_table_r = a.page_table,
        .page_table_start_r = a.page_table_start + s,
        .k_stats = retrieval.stats.as<const float>(),
        .n_retrieval_heads = retrieval.n_heads,
        .page_size = ctx.kv.config().page_size,
        .logical_page_size = ctx.kv.config().logical_page_size,
        .max_pages = ctx.max_pages,
        .selected_pages = reinterpret_cast<int32_t*>(ctx.scratch.selected.as<uint8_t>() + step_list),
        .n_selected = reinterpret_cast<int64_t*>(ctx.scratch.n_selected.as<uint8_t>() + step_count)}));
    LSERVE_RETURN_IF_ERROR(be.CopyOnDevice(kept_pages, kept_list, ctx.scratch.selected, step_list, list_bytes));
    LSERVE_RETURN_IF_ERROR(be.CopyOnDevice(kept_counts, kept_count, ctx.scratch.n_selected, step_count, count_bytes));
  }
  return Status::Ok();
}

Status AttendSparse(const LayerContext& ctx, int64_t layer) {
  const StepArrays& a = ctx.arrays;
  const KvCacheConfig& c = ctx.kv.config();
  const KvPoolStorage& r = ctx.kv.at(layer, KvPool::kRetrieval);
  const KvPoolStorage& st = ctx.kv.at(layer, KvPool::kStreaming);
  LSERVE_RETURN_IF_ERROR(PrepareSelections(ctx, layer, r));
  const bool select = ctx.selections != nullptr && !ctx.selections->empty() && r.n_heads > 0;
  SparseAttentionParams p = RetrievalSparseParams(ctx, layer, r);
  if (select) {
    p.selected_pages = ctx.scratch.selected.as<const int32_t>();
    p.n_selected = ctx.scratch.n_selected.as<const int64_t>();
  }
  p.max_selected = ctx.max_pages;
  p.page_table_s = a.stream_page_table;
  p.page_table_start_s = a.stream_page_table_start;
  p.k_cache_s = st.k.as<const float>();
  p.v_cache_s = st.v.as<const float>();
  p.n_streaming_heads = st.n_heads;
  p.stream_sink_pages = c.sink_pages();
  p.seq_sink = a.seq_sink;
  p.seq_local = a.seq_local;
  p.seq_ring_pages = a.ring_pages;
  p.seq_counters = ctx.scratch.seq_counters.as<SparseAttentionCounters>();
  return ctx.backend.SparseAttention(p);
}

// AttentionProbe: the log-sum-exp of every row over its causal keys and over
// the probe's Λ window, both from the sparse kernel reading the retrieval
// pool (the window through a "ring" as long as the whole page table, so that
// ring slot b is page b).
Status ProbeAttention(const LayerContext& ctx, int64_t layer, const KvPoolStorage& pool) {
  Backend& be = ctx.backend;
  const ModelDims& d = ctx.dims;
  const StepArrays& a = ctx.arrays;
  const PagedBatch& b = ctx.in.batch;
  AttentionProbe& probe = *ctx.probe;
  const int64_t rows = ctx.in.rows;
  const uint64_t lse_bytes = static_cast<uint64_t>(rows * d.q_heads) * sizeof(float);
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer out, be.Allocate(static_cast<uint64_t>(rows * d.q_dim()) * sizeof(float)));
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer lse_full, be.Allocate(lse_bytes));
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer lse_window, be.Allocate(lse_bytes));
  std::vector<int64_t> table_pages(static_cast<size_t>(b.num_seqs));
  for (int64_t s = 0; s < b.num_seqs; ++s) {
    table_pages[static_cast<size_t>(s)] = std::max<int64_t>(1, b.page_table_start[s + 1] - b.page_table_start[s]);
  }
  const std::vector<int8_t> all_streaming(static_cast<size_t>(d.kv_heads), kHeadModeStreaming);
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer ring, be.Allocate(table_pages.size() * sizeof(int64_t)));
  LSERVE_RETURN_IF_ERROR(be.CopyToDevice(ring, 0, table_pages.data(), table_pages.size() * sizeof(int64_t)));
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer modes, be.Allocate(all_streaming.size()));
  LSERVE_RETURN_IF_ERROR(be.CopyToDevice(modes, 0, all_streaming.data(), all_streaming.size()));
  // Full causal attention of every head over the retrieval pool, then the
  // same keys seen as streaming heads through the Λ window.
  SparseAttentionParams p = RetrievalSparseParams(ctx, layer, pool);
  p.out = out.as<float>();
  p.lse = lse_full.as<float>();
  p.page_table_s = a.page_table;
  p.page_table_start_s = a.page_table_start;
  p.k_cache_s = pool.k.as<const float>();
  p.v_cache_s = pool.v.as<const float>();
  p.n_streaming_heads = pool.n_heads;
  p.sink = probe.sink;
  p.local = probe.local;
  p.seq_ring_pages = ring.as<const int64_t>();
  LSERVE_RETURN_IF_ERROR(be.SparseAttention(p));
  p.head_mode = modes.as<const int8_t>();
  p.lse = lse_window.as<float>();
  LSERVE_RETURN_IF_ERROR(be.SparseAttention(p));
  std::vector<float> full(static_cast<size_t>(rows * d.q_heads)), window(full.size());
  LSERVE_RETURN_IF_ERROR(be.Synchronize());
  LSERVE_RETURN_IF_ERROR(be.CopyToHost(full.data(), lse_full, 0, lse_bytes));
  LSERVE_RETURN_IF_ERROR(be.CopyToHost(window.data(), lse_window, 0, lse_bytes));
  const int64_t group = d.q_heads / d.kv_heads;
  for (int64_t s = 0; s < b.num_seqs; ++s) {
    for (int64_t row = b.q_start[s]; row < b.q_start[s + 1]; ++row) {
      if (b.q_pos0[s] + (row - b.q_start[s]) < probe.min_position) continue;
      for (int64_t h = 0; h < d.q_heads; ++h) {
        const size_t i = static_cast<size_t>(row * d.q_heads + h);
        const double kept = std::exp(static_cast<double>(window[i]) - static_cast<double>(full[i]));
        probe.kept_mass[static_cast<size_t>(layer * d.kv_heads + h / group)] += std::min(1.0, kept) / group;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status RunLlamaLayer(const LayerContext& ctx, const LlamaLayerWeights& w, int64_t layer,
                     const std::vector<int64_t>* keep_rows) {
  Backend& be = ctx.backend;
  const ModelDims& d = ctx.dims;
  ForwardScratch& s = ctx.scratch;
  const StepArrays& a = ctx.arrays;
  const int64_t rows = ctx.in.rows;
  float* hidden = s.hidden.as<float>();
  float* normed = s.normed.as<float>();
  float* q = s.q.as<float>();
  float* k = s.k.as<float>();
  float* v = s.v.as<float>();
  float* attn = s.attn.as<float>();
  float* proj = s.proj.as<float>();
  float* gate = s.gate.as<float>();
  float* up = s.up.as<float>();

  // --- attention ---
  LSERVE_RETURN_IF_ERROR(be.RmsNorm(RmsNormParams{.x = hidden, .weight = w.input_norm.data(),
                                                  .weight_dtype = w.input_norm.dtype, .out = normed,
                                                  .n = rows, .dim = d.hidden, .eps = d.rms_eps}));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.q, normed, q, rows));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.k, normed, k, rows));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.v, normed, v, rows));
  for (const RopeGroup& g : ctx.in.rope_groups) {
    const RopeTable& table = ctx.in.rope_tables[static_cast<size_t>(g.table)];
    LSERVE_RETURN_IF_ERROR(be.Rope(RopeParams{.q = q + g.row_begin * d.q_dim(),
                                              .k = k + g.row_begin * d.kv_dim(),
                                              .n = g.row_end - g.row_begin,
                                              .n_q_heads = d.q_heads,
                                              .n_kv_heads = d.kv_heads,
                                              .head_dim = d.head_dim,
                                              .positions = a.positions + g.row_begin,
                                              .inv_freq = a.inv_freq + g.table * (d.head_dim / 2),
                                              .attention_scaling = table.attention_scaling}));
  }
  const KvPoolStorage& retrieval = ctx.kv.at(layer, KvPool::kRetrieval);
  LSERVE_RETURN_IF_ERROR(AppendKv(ctx, retrieval, a.slot_page, a.slot_offset));
  if (ctx.in.sparse) {
    LSERVE_RETURN_IF_ERROR(
        AppendKv(ctx, ctx.kv.at(layer, KvPool::kStreaming), a.stream_slot_page, a.stream_slot_offset));
    LSERVE_RETURN_IF_ERROR(AttendSparse(ctx, layer));
  } else {
    LSERVE_RETURN_IF_ERROR(AttendDense(ctx, retrieval));
    if (ctx.probe != nullptr) LSERVE_RETURN_IF_ERROR(ProbeAttention(ctx, layer, retrieval));
  }

  // Rows carried past the attention.
  int64_t m = rows;
  if (keep_rows != nullptr && static_cast<int64_t>(keep_rows->size()) < rows) {
    LSERVE_RETURN_IF_ERROR(CompactRows(be, s.attn, d.q_dim(), *keep_rows));
    LSERVE_RETURN_IF_ERROR(CompactRows(be, s.hidden, d.hidden, *keep_rows));
    m = static_cast<int64_t>(keep_rows->size());
    if (m == 0) return Status::Ok();
  }
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.o, attn, proj, m));
  LSERVE_RETURN_IF_ERROR(be.Add(AddParams{.a = hidden, .b = proj, .out = hidden, .n = m * d.hidden}));

  // --- MLP ---
  LSERVE_RETURN_IF_ERROR(be.RmsNorm(RmsNormParams{.x = hidden, .weight = w.post_attention_norm.data(),
                                                  .weight_dtype = w.post_attention_norm.dtype, .out = normed,
                                                  .n = m, .dim = d.hidden, .eps = d.rms_eps}));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.gate, normed, gate, m));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.up, normed, up, m));
  LSERVE_RETURN_IF_ERROR(be.Swiglu(SwigluParams{.gate = gate, .up = up, .out = gate, .m = m, .inter = d.inter}));
  LSERVE_RETURN_IF_ERROR(RunLinear(be, w.down, gate, proj, m));
  return be.Add(AddParams{.a = hidden, .b = proj, .out = hidden, .n = m * d.hidden});
}

}  // namespace lserve
