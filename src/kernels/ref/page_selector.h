// Page selector of the decode step (DESIGN.md §4 "Decode", LSERVE.md §4-§5):
// for each sequence and retrieval KV head, the pages of the retrieval table
// that the sparse decode attention reads (kernels/ref/sparse_attention.h).
//
// With P the page size, L the logical page size (g = P / L logical pages per
// page) and len = kv_len[s], the sequence has n = ceil(len / P) pages. Query
// head h scores logical page (b, i) (tokens [b*P + i*L, b*P + (i+1)*L)) as
//   S = sum_c max(q_c * kmax_c, q_c * kmin_c)     (f32, channels in order)
// from the key statistics (post-RoPE keys), and page b as the max over its
// logical pages that hold tokens (b*P + i*L < len). A KV head's page score is
// the max over the query heads of its GQA group, so the group reads one set.
// Selected: the newest page n - 1 plus the top (K - 1) of pages 0 .. n - 2 by
// score (ties: lower page index first); every page when n <= K; none when
// K == 0 or len == 0. Pages at or past n are never selected. Output lists are
// page-table indices in ascending order. Streaming heads get empty lists.
#pragma once

#include <cstdint>
#include <vector>

namespace lserve {

struct PageSelectorParams {
  const float* q;                     // [n_seqs, n_q_heads, head_dim] the decode row of each sequence (after RoPE)
  int64_t n_q_heads, n_kv_heads, head_dim;  // n_kv_heads divides n_q_heads
  int64_t n_seqs;
  const int64_t* kv_len;              // [n_seqs] cached tokens, the current one included
  const int8_t* head_mode;            // [n_kv_heads] kHeadModeRetrieval / kHeadModeStreaming (sparse_attention.h)
  const int32_t* pool_slot;           // [n_kv_heads] the head's slot within its pool
  const int32_t* page_table_r;        // retrieval pages of sequence s: [page_table_start_r[s], page_table_start_r[s+1])
  const int64_t* page_table_start_r;  // [n_seqs + 1]; >= ceil(kv_len / P) pages each
  const float* k_stats;               // [num_pages, n_retrieval_heads, P / L, 2, head_dim] (max, then min)
  int64_t n_retrieval_heads;
  int64_t page_size, logical_page_size;  // P, L; L divides P
  int64_t max_pages;                  // K >= 0
  int32_t* selected_pages;            // [n_seqs, n_kv_heads, max_pages] out (entries past n_selected untouched)
  int64_t* n_selected;                // [n_seqs, n_kv_heads] out
};

void SelectPagesRef(const PageSelectorParams& p);

// The selection of one (sequence, KV head), written to its output list; the
// building block of SelectPagesRef and the threaded CPU version (bit-identical).
// scores and order are scratch.
void SelectPagesOfHead(const PageSelectorParams& p, int64_t seq, int64_t kv_head, std::vector<float>& scores,
                       std::vector<int32_t>& order);

}  // namespace lserve
