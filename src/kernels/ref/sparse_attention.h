// Sparse attention of a ragged batch over the two paged KV pools of one layer
// (DESIGN.md §4 "Prefill", "Decode"): one kernel for prefill chunks and decode
// rows, the key set of each KV head chosen by its mode.
//
// Rows, positions and GQA are as kernels/ref/attention.h: sequence s owns query
// rows q_start[s] .. q_start[s+1]; row q_start[s] + i is at absolute position
// pos = q_pos0[s] + i and never sees a key past min(pos + 1, kv_len[s]) (=: v).
// Query head h uses KV head h / (n_q_heads / n_kv_heads).
//
// Key set of (row, KV head kh), by head_mode[kh]:
//   retrieval (1), no selection:  keys [0, v)                        (dense causal)
//   retrieval (1), selection:     keys [b*P, (b+1)*P) ∩ [0, v) of the selected
//                                 pages b (indices into the sequence's retrieval
//                                 table); a page past v contributes nothing
//   streaming (0):                key j with j < v and (j < sink or j > pos - local)
//                                 (Λ mask, token-exact; decode passes the decode
//                                 sink/local, prefill the prefill ones)
// Only the key pages holding keys of the set are read, so skipped pages cost
// nothing and unused cache slots (even NaN) never reach the output.
//
// Pools. Retrieval KV head kh is head slot pool_slot[kh] of the retrieval pool
// and its key j lives in page page_table_r[page_table_start_r[s] + j / P] at
// offset j % P. Streaming KV head kh is slot pool_slot[kh] of the streaming
// pool, whose per-sequence table is the ring (kvcache/streaming_ring.h): logical
// page b lives at table slot b if b < S, else S + (b - S) mod W. The ring must
// still hold every page the key set needs (b < S or b > (kv_len - 1) / P - W).
//
// Numerics exactly as PagedAttentionRef over the key set in ascending order, so
// all-retrieval without selection, a selection of every page, and streaming
// heads with sink + local >= the length give PagedAttentionRef's bits.
// A row that sees no key gets out = 0 and lse = -inf (merge.h's empty state).
//
// Counters (nullable, accumulated): for each (row, KV head), blocks_visited
// += the pages holding keys of its set and blocks_dense += the pages dense
// causal attention would read (ceil(v / P)); `counters` sums the call,
// `seq_counters[s]` the rows of sequence s.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lserve {

// Values of SparseAttentionParams::head_mode.
inline constexpr int8_t kHeadModeStreaming = 0;
inline constexpr int8_t kHeadModeRetrieval = 1;

struct SparseAttentionCounters {
  int64_t blocks_visited = 0;
  int64_t blocks_dense = 0;
};

struct SparseAttentionParams {
  const float* q;                   // [rows, n_q_heads, head_dim] f32 (after RoPE)
  float* out;                       // [rows, n_q_heads, head_dim] f32; must not alias q
  float* lse;                       // [rows, n_q_heads] f32, nullable
  int64_t n_q_heads, n_kv_heads, head_dim;  // n_kv_heads divides n_q_heads
  float scale;
  int64_t n_seqs;
  const int64_t* q_start;           // [n_seqs + 1]
  const int64_t* q_pos0;            // [n_seqs]
  const int64_t* kv_len;            // [n_seqs] cached tokens of the sequence (own chunk included)
  int64_t page_size;                // P, both pools
  const int8_t* head_mode;          // [n_kv_heads] kHeadModeRetrieval / kHeadModeStreaming
  const int32_t* pool_slot;         // [n_kv_heads] the head's slot within its pool

  // Retrieval pool.
  const int32_t* page_table_r;        // pages of sequence s: [page_table_start_r[s], page_table_start_r[s+1])
  const int64_t* page_table_start_r;  // [n_seqs + 1]; >= ceil(kv_len / P) pages each
  const float* k_cache_r;             // [num_pages, n_retrieval_heads, P, head_dim]
  const float* v_cache_r;             // [num_pages, n_retrieval_heads, P, head_dim]
  int64_t n_retrieval_heads;
  // Optional page selection of the retrieval heads (nullptr = dense causal).
  const int32_t* selected_pages;      // [n_seqs, n_kv_heads, max_selected] page-table indices, ascending
  const int64_t* n_selected;          // [n_seqs, n_kv_heads] entries used (<= max_selected);
                                      // negative: no selection for this (sequence, head), dense causal
  int64_t max_selected;

  // Streaming pool.
  const int32_t* page_table_s;        // ring slots of sequence s: [page_table_start_s[s], page_table_start_s[s+1])
  const int64_t* page_table_start_s;  // [n_seqs + 1]
  const float* k_cache_s;             // [num_pages, n_streaming_heads, P, head_dim]
  const float* v_cache_s;             // [num_pages, n_streaming_heads, P, head_dim]
  int64_t n_streaming_heads;
  int64_t stream_sink_pages, stream_ring_pages;  // S, W (W >= 1 when a streaming head reads a ring page)
  int64_t sink, local;                // streaming window in tokens (local counts the query itself)
  // Optional per-sequence overrides of sink, local and W (nullptr = the
  // scalars above for every sequence): a step mixing prefill chunks (prefill
  // window, prefill ring) and decode rows (decode window, decode ring).
  const int64_t* seq_sink;            // [n_seqs] or nullptr
  const int64_t* seq_local;           // [n_seqs] or nullptr
  const int64_t* seq_ring_pages;      // [n_seqs] or nullptr

  SparseAttentionCounters* counters;      // nullable: totals of the call
  SparseAttentionCounters* seq_counters;  // nullable: [n_seqs], per sequence
};

void SparseAttentionRef(const SparseAttentionParams& p);

// The streaming window and ring width of sequence s.
inline int64_t SinkOf(const SparseAttentionParams& p, int64_t s) { return p.seq_sink ? p.seq_sink[s] : p.sink; }
inline int64_t LocalOf(const SparseAttentionParams& p, int64_t s) { return p.seq_local ? p.seq_local[s] : p.local; }
inline int64_t RingPagesOf(const SparseAttentionParams& p, int64_t s) {
  return p.seq_ring_pages ? p.seq_ring_pages[s] : p.stream_ring_pages;
}

// The visible keys of a streaming row as two ascending, disjoint ranges:
// [0, sink_end) and [local_begin, visible_end) (either may be empty).
struct StreamingKeyRanges {
  int64_t sink_end, local_begin, visible_end;
};
inline StreamingKeyRanges StreamingRangesOf(int64_t pos, int64_t kv_len, int64_t sink, int64_t local) {
  const int64_t v = std::max<int64_t>(0, std::min(pos + 1, kv_len));
  const int64_t sink_end = std::min(sink, v);
  const int64_t local_begin = std::max({sink_end, pos - local + 1, int64_t{0}});
  return {sink_end, local_begin, std::max(local_begin, v)};
}

// Pages [b0, b1) of page size ps intersecting key range [begin, end) (empty range: 0).
inline int64_t PagesSpanned(int64_t begin, int64_t end, int64_t ps) {
  return end > begin ? (end - 1) / ps - begin / ps + 1 : 0;
}

// Pages holding keys of a streaming row (a page straddling both ranges counts once).
inline int64_t StreamingPagesVisited(const StreamingKeyRanges& r, int64_t ps) {
  int64_t n = PagesSpanned(0, r.sink_end, ps) + PagesSpanned(r.local_begin, r.visible_end, ps);
  if (r.sink_end > 0 && r.visible_end > r.local_begin && (r.sink_end - 1) / ps == r.local_begin / ps) --n;
  return n;
}

// Table slot of logical streaming page b in a ring of S sink + W local pages.
inline int64_t RingSlotOf(int64_t b, int64_t sink_pages, int64_t ring_pages) {
  return b < sink_pages ? b : sink_pages + (b - sink_pages) % ring_pages;
}

}  // namespace lserve
