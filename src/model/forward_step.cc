#include "model/forward_step.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace lserve {
namespace {

constexpr uint64_t kMetaAlign = 64;
constexpr int64_t kRowGranule = 64;   // activation rows are allocated in multiples of this
constexpr int64_t kLogitGranule = 8;  // and logit rows in multiples of this

int64_t RoundUp(int64_t n, int64_t granule) { return (n + granule - 1) / granule * granule; }

Status EnsureBuffer(Backend& backend, DeviceBuffer& b, uint64_t bytes) {
  if (bytes == 0 || b.size() >= bytes) return Status::Ok();
  b.Reset();  // free first: the old contents are not needed
  LSERVE_ASSIGN_OR_RETURN(b, backend.Allocate(bytes));
  return Status::Ok();
}

// Host staging of the meta buffer: sections appended at 64-byte boundaries.
class MetaPacker {
 public:
  template <typename T>
  uint64_t Add(const std::vector<T>& v) {
    const uint64_t at = (bytes_.size() + kMetaAlign - 1) / kMetaAlign * kMetaAlign;
    bytes_.resize(at + v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(bytes_.data() + at, v.data(), v.size() * sizeof(T));
    return at;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace

ModelDims ModelDims::FromConfig(const ModelConfig& c) {
  ModelDims d;
  d.vocab = c.vocab_size;
  d.hidden = c.hidden_size;
  d.inter = c.intermediate_size;
  d.layers = c.num_hidden_layers;
  d.q_heads = c.num_attention_heads;
  d.kv_heads = c.num_key_value_heads;
  d.head_dim = c.head_dim;
  d.rms_eps = static_cast<float>(c.rms_norm_eps);
  return d;
}

Result<StepInputs> BuildStepInputs(const BatchPlan& plan, const KvCacheManager& kv, const ModelDims& dims,
                                   const RopeTables& rope, bool sparse) {
  StepInputs in;
  LSERVE_ASSIGN_OR_RETURN(in.batch, BuildPagedBatch(plan, kv, KvPool::kRetrieval));
  in.rows = in.batch.num_tokens;
  for (const SequenceStep& step : plan.steps) in.seq_decode.push_back(step.is_decode ? 1 : 0);
  if (sparse) {
    const KvCacheConfig& c = kv.config();
    in.sparse = true;
    if (c.has_streaming_heads()) {
      LSERVE_ASSIGN_OR_RETURN(in.stream, BuildPagedBatch(plan, kv, KvPool::kStreaming));
    }
    for (size_t s = 0; s < plan.steps.size(); ++s) {
      const SequenceStep& step = plan.steps[s];
      // The ring holds every key a chunk's queries need only for chunks up to
      // the size it was built for (kv_cache.h).
      if (c.has_streaming_heads() && !step.is_decode && static_cast<int64_t>(step.tokens.size()) > c.prefill_chunk) {
        return InvalidArgument("batch plan step " + std::to_string(s) + ": a prefill chunk of " +
                               std::to_string(step.tokens.size()) + " tokens is longer than the " +
                               std::to_string(c.prefill_chunk) + " the streaming rings are sized for");
      }
      in.seq_sink.push_back(step.is_decode ? c.decode_sink : c.prefill_sink);
      in.seq_local.push_back(step.is_decode ? c.decode_local : c.prefill_local);
    }
    in.n_selected.assign(plan.steps.size() * static_cast<size_t>(dims.kv_heads), -1);
  }
  in.token_ids.reserve(static_cast<size_t>(in.rows));
  int64_t row = 0;
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const SequenceStep& step = plan.steps[s];
    for (int32_t id : step.tokens) {
      if (id < 0 || id >= dims.vocab) {
        return InvalidArgument("batch plan step " + std::to_string(s) + ": token id " + std::to_string(id) +
                               " is outside the vocabulary of " + std::to_string(dims.vocab));
      }
      in.token_ids.push_back(id);
    }
    const int64_t n = static_cast<int64_t>(step.tokens.size());
    const int64_t end_pos = step.start_pos + n;

    // RoPE: one table for the whole step unless it depends on the pass length.
    if (rope.depends_on_length() || in.rope_tables.empty()) {
      LSERVE_ASSIGN_OR_RETURN(RopeTable table, rope.ForSeqLen(end_pos));
      if (in.rope_tables.empty() || table.inv_freq != in.rope_tables.back().inv_freq ||
          table.attention_scaling != in.rope_tables.back().attention_scaling) {
        in.rope_tables.push_back(std::move(table));
        in.rope_groups.push_back({row, row, static_cast<int64_t>(in.rope_tables.size()) - 1});
      }
    }
    in.rope_groups.back().row_end = row + n;

    const int64_t first_logit = step.logits == LogitsWanted::kAll ? 0 : step.logits == LogitsWanted::kLast ? n - 1 : n;
    for (int64_t i = first_logit; i < n; ++i) {
      in.logit_rows.push_back(row + i);
      in.logit_info.push_back(
          LogitsRow{.step = static_cast<int64_t>(s), .seq_id = step.seq_id, .position = step.start_pos + i});
    }
    row += n;
  }
  return in;
}

Status ForwardScratch::Reserve(Backend& backend, const ModelDims& d, int64_t rows, int64_t logit_rows) {
  Status st = Grow(backend, d, rows, logit_rows);
  if (!st.ok()) {
    // A step that does not fit leaves no scratch behind, so that smaller steps
    // (the scheduler's reaction) get the memory back.
    *this = ForwardScratch();
  }
  return st;
}

Status ForwardScratch::Grow(Backend& backend, const ModelDims& d, int64_t rows, int64_t logit_rows) {
  if (rows > row_capacity) {
    const int64_t cap = RoundUp(rows, kRowGranule);
    const uint64_t f = sizeof(float) * static_cast<uint64_t>(cap);
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, hidden, f * d.hidden));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, normed, f * d.hidden));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, q, f * d.q_dim()));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, k, f * d.kv_dim()));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, v, f * d.kv_dim()));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, attn, f * d.q_dim()));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, proj, f * d.hidden));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, gate, f * d.inter));
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, up, f * d.inter));
    row_capacity = cap;
  }
  if (logit_rows > logit_capacity) {
    const int64_t cap = RoundUp(logit_rows, kLogitGranule);
    LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, logits, sizeof(float) * static_cast<uint64_t>(cap) * d.vocab));
    logit_capacity = cap;
  }
  return Status::Ok();
}

Result<StepArrays> UploadStepInputs(Backend& backend, const StepInputs& in, const ModelDims& dims,
                                    int64_t max_pages, ForwardScratch& scratch) {
  const PagedBatch& b = in.batch;
  std::vector<float> inv_freq;
  inv_freq.reserve(in.rope_tables.size() * static_cast<size_t>(dims.head_dim / 2));
  for (const RopeTable& t : in.rope_tables) inv_freq.insert(inv_freq.end(), t.inv_freq.begin(), t.inv_freq.end());

  MetaPacker pack;
  const uint64_t o_ids = pack.Add(in.token_ids);
  const uint64_t o_pos = pack.Add(b.positions);
  const uint64_t o_slot_page = pack.Add(b.slot_page);
  const uint64_t o_slot_offset = pack.Add(b.slot_offset);
  const uint64_t o_q_start = pack.Add(b.q_start);
  const uint64_t o_q_pos0 = pack.Add(b.q_pos0);
  const uint64_t o_kv_len = pack.Add(b.kv_len);
  const uint64_t o_pages = pack.Add(b.page_table);
  const uint64_t o_pages_start = pack.Add(b.page_table_start);
  const uint64_t o_freq = pack.Add(inv_freq);
  const PagedBatch& st = in.stream;
  const uint64_t o_s_slot_page = pack.Add(st.slot_page);
  const uint64_t o_s_slot_offset = pack.Add(st.slot_offset);
  const uint64_t o_s_pages = pack.Add(st.page_table);
  const uint64_t o_s_pages_start = pack.Add(st.page_table_start);
  const uint64_t o_ring = pack.Add(st.ring_pages);
  const uint64_t o_sink = pack.Add(in.seq_sink);
  const uint64_t o_local = pack.Add(in.seq_local);
  const std::vector<uint8_t>& bytes = pack.bytes();

  LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, scratch.meta, bytes.size() + kMetaAlign));
  LSERVE_RETURN_IF_ERROR(backend.CopyToDevice(scratch.meta, 0, bytes.data(), bytes.size()));
  auto* base = static_cast<uint8_t*>(scratch.meta.data());
  StepArrays a;
  a.token_ids = reinterpret_cast<const int32_t*>(base + o_ids);
  a.positions = reinterpret_cast<const int64_t*>(base + o_pos);
  a.slot_page = reinterpret_cast<const int32_t*>(base + o_slot_page);
  a.slot_offset = reinterpret_cast<const int32_t*>(base + o_slot_offset);
  a.q_start = reinterpret_cast<const int64_t*>(base + o_q_start);
  a.q_pos0 = reinterpret_cast<const int64_t*>(base + o_q_pos0);
  a.kv_len = reinterpret_cast<const int64_t*>(base + o_kv_len);
  a.page_table = reinterpret_cast<const int32_t*>(base + o_pages);
  a.page_table_start = reinterpret_cast<const int64_t*>(base + o_pages_start);
  a.inv_freq = reinterpret_cast<const float*>(base + o_freq);
  if (!in.sparse) return a;
  if (!st.slot_page.empty()) {
    a.stream_slot_page = reinterpret_cast<const int32_t*>(base + o_s_slot_page);
    a.stream_slot_offset = reinterpret_cast<const int32_t*>(base + o_s_slot_offset);
    a.stream_page_table = reinterpret_cast<const int32_t*>(base + o_s_pages);
    a.stream_page_table_start = reinterpret_cast<const int64_t*>(base + o_s_pages_start);
    a.ring_pages = reinterpret_cast<const int64_t*>(base + o_ring);
  }
  a.seq_sink = reinterpret_cast<const int64_t*>(base + o_sink);
  a.seq_local = reinterpret_cast<const int64_t*>(base + o_local);

  const uint64_t seqs = static_cast<uint64_t>(in.batch.num_seqs);
  const uint64_t lists = seqs * static_cast<uint64_t>(dims.kv_heads);
  LSERVE_RETURN_IF_ERROR(
      EnsureBuffer(backend, scratch.selected, lists * static_cast<uint64_t>(std::max<int64_t>(1, max_pages)) * 4));
  LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, scratch.n_selected, lists * sizeof(int64_t)));
  LSERVE_RETURN_IF_ERROR(backend.CopyToDevice(scratch.n_selected, 0, in.n_selected.data(), lists * sizeof(int64_t)));
  const uint64_t counter_bytes = seqs * sizeof(SparseAttentionCounters);
  LSERVE_RETURN_IF_ERROR(EnsureBuffer(backend, scratch.seq_counters, counter_bytes));
  LSERVE_RETURN_IF_ERROR(backend.Memset(scratch.seq_counters, 0, counter_bytes, 0));
  return a;
}

}  // namespace lserve
