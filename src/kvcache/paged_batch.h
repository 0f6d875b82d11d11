// PagedBatch: the flat arrays that the paged attention and KV-append kernels
// read for one pool in one step, built from a BatchPlan and the KV cache.
// Pure: a function of its inputs, no state. Rows (tokens) are in plan order;
// sequence s of the batch is plan.steps[s].
//
// Call after KvCacheManager::Grow(seq, start_pos + tokens) for every step, and
// after BeginDecode for every sequence whose step is a decode step.
//
// Example, P = 16, retrieval pool: steps {seq 7: prefill 20 tokens at 0,
// seq 3: decode 1 token at 40} with pages seq 7 = [0, 1], seq 3 = [2, 3, 4]:
//   q_start = [0, 20, 21]   q_pos0 = [0, 40]   kv_len = [20, 41]
//   page_table = [0, 1, 2, 3, 4]   page_table_start = [0, 2, 5]
//   positions = [0..19, 40]; slot of row 20 = (page 4, offset 8).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kvcache/batch_plan.h"
#include "kvcache/kv_cache.h"

namespace lserve {

struct PagedBatch {
  KvPool pool = KvPool::kRetrieval;
  int64_t page_size = 0;
  int64_t num_seqs = 0;
  int64_t num_tokens = 0;
  std::vector<int64_t> q_start;           // [num_seqs + 1] first row of each sequence; q_start[num_seqs] = num_tokens
  std::vector<int64_t> q_pos0;            // [num_seqs] absolute position of each sequence's first row
  std::vector<int64_t> kv_len;            // [num_seqs] tokens cached incl. this step's = q_pos0 + rows
  std::vector<int32_t> page_table;        // [page_table_start[num_seqs]] page ids, sequence after sequence
  std::vector<int64_t> page_table_start;  // [num_seqs + 1]
  // Per row: where the kernel writes the token's K/V; page -1 = not stored
  // (a streaming token outside the sink and the ring, or a pool without heads).
  std::vector<int32_t> slot_page;         // [num_tokens]
  std::vector<int32_t> slot_offset;       // [num_tokens]
  std::vector<int64_t> positions;         // [num_tokens] absolute position of each row
  // Streaming pool only. page_table holds each sequence's ring in slot order
  // (-1 = slot without a page); logical page b of sequence s is at
  //   page_table[page_table_start[s] + (b < sink_pages ? b : sink_pages + (b - sink_pages) % ring_pages[s])]
  // and is readable only while held (the sink pages and the newest ring pages).
  int64_t sink_pages = 0;
  std::vector<int64_t> ring_pages;        // [num_seqs] W of each sequence (prefill and decode widths differ)
};

// InvalidArgument unless every step names a live sequence once, has tokens,
// is a single token when it is a decode step (whose sequence has begun
// decoding), starts at start_pos >= 0, and the sequence's cached length is
// exactly start_pos + tokens (Grow was called for this step).
Status ValidateBatchPlan(const BatchPlan& plan, const KvCacheManager& kv);

// ValidateBatchPlan, then the arrays for `pool`.
Result<PagedBatch> BuildPagedBatch(const BatchPlan& plan, const KvCacheManager& kv, KvPool pool);

}  // namespace lserve
