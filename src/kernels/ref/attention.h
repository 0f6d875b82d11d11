// Dense causal attention of a ragged batch over the paged KV cache (GQA).
//
// Sequence s owns query rows q_start[s] .. q_start[s+1]; row q_start[s] + i
// is the token at absolute position q_pos0[s] + i. The sequence's cached keys
// 0 .. kv_len[s]-1 (its own chunk included, already appended) live in its
// pages: key position j is in page page_table[page_table_start[s] + j / page_size]
// at offset j % page_size. A query at position p attends to keys 0 .. min(p, kv_len-1).
// Query head h uses kv head h / (n_q_heads / n_kv_heads).
//   out = softmax(scale * q k^T) v   (softmax in f32)
//   lse = log(sum_j exp(scale * q.k_j)) (natural log)
// A query that sees no key gets out = 0 and lse = -inf (merge.h's empty state).
#pragma once

#include <cstdint>

namespace lserve {

struct PagedAttentionParams {
  const float* q;                   // [rows, n_q_heads, head_dim] f32 (after RoPE)
  float* out;                       // [rows, n_q_heads, head_dim] f32; must not alias q
  float* lse;                       // [rows, n_q_heads] f32, nullable
  int64_t n_q_heads, n_kv_heads, head_dim;  // n_kv_heads divides n_q_heads
  float scale;                      // usually 1 / sqrt(head_dim)
  int64_t n_seqs;
  const int64_t* q_start;           // [n_seqs + 1] first query row of each sequence; rows = q_start[n_seqs]
  const int64_t* q_pos0;            // [n_seqs] absolute position of each sequence's first query row
  const int64_t* kv_len;            // [n_seqs] cached tokens visible to the sequence
  const int32_t* page_table;        // pages of sequence s: page_table[page_table_start[s] .. page_table_start[s+1])
  const int64_t* page_table_start;  // [n_seqs + 1]; at least ceil(kv_len[s] / page_size) pages each
  const float* k_cache;             // [num_pages, n_kv_heads, page_size, head_dim] f32
  const float* v_cache;             // [num_pages, n_kv_heads, page_size, head_dim] f32
  int64_t page_size;
  int64_t pool_head_of_kv_head;     // reserved: the pool head slot of kv head h is h (all heads are
                                    // retrieval heads for now, so the pool has n_kv_heads slots); unused
};

void PagedAttentionRef(const PagedAttentionParams& p);

}  // namespace lserve
