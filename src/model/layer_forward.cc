#include "model/layer_forward.h"

#include <cmath>

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

Status RunLlamaLayer(const LayerContext& ctx, const LlamaLayerWeights& w, const KvPoolStorage& kv,
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
  LSERVE_RETURN_IF_ERROR(be.KvAppend(KvAppendParams{.k = k,
                                                    .v = v,
                                                    .n_tokens = rows,
                                                    .n_kv_heads = d.kv_heads,
                                                    .head_dim = d.head_dim,
                                                    .pool_heads = kv.heads.as<const int32_t>(),
                                                    .n_pool_heads = kv.n_heads,
                                                    .k_cache = kv.k.as<float>(),
                                                    .v_cache = kv.v.as<float>(),
                                                    .page_size = ctx.page_size,
                                                    .slot_page = a.slot_page,
                                                    .slot_offset = a.slot_offset,
                                                    .k_stats = kv.stats.as<float>(),
                                                    .logical_page_size = ctx.logical_page_size,
                                                    .positions = a.positions}));
  LSERVE_RETURN_IF_ERROR(be.PagedAttention(PagedAttentionParams{
      .q = q,
      .out = attn,
      .lse = nullptr,
      .n_q_heads = d.q_heads,
      .n_kv_heads = d.kv_heads,
      .head_dim = d.head_dim,
      .scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim)),
      .n_seqs = ctx.in.batch.num_seqs,
      .q_start = a.q_start,
      .q_pos0 = a.q_pos0,
      .kv_len = a.kv_len,
      .page_table = a.page_table,
      .page_table_start = a.page_table_start,
      .k_cache = kv.k.as<const float>(),
      .v_cache = kv.v.as<const float>(),
      .page_size = ctx.page_size,
      .pool_head_of_kv_head = 0}));

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
