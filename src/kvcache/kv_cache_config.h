// KvCacheConfig: the shape of the paged KV cache (DESIGN.md §4 "KV cache").
//
// Per layer there are two pools, each a set of physical pages of P tokens:
//   retrieval pool: the layer's retrieval KV heads; a sequence's page table
//                   grows by one page per P tokens; beside each page, per head,
//                   the channel-wise max and min of the post-RoPE keys of each
//                   logical page of L tokens (g = P/L logical pages per page);
//   streaming pool: the layer's streaming KV heads; a sequence holds a fixed
//                   ring of S sink pages + W local pages (streaming_ring.h).
// Page ids are shared across layers: a sequence's page table is the same for
// every layer, and each layer has its own storage arrays indexed by page id
// (kv_layout.h). A layer with zero heads of one kind has zero-size storage for
// that pool; a pool is used at all only if some layer has heads in it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace lserve {

enum class KvPool : uint8_t { kRetrieval = 0, kStreaming = 1 };
const char* KvPoolName(KvPool pool);  // "retrieval", "streaming"

struct KvCacheConfig {
  int64_t page_size = 64;          // P: 16, 32, 64 or 128 tokens per physical page
  int64_t logical_page_size = 16;  // L: tokens per key-statistics page; divides P
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;  // KV heads per layer (the model's num_key_value_heads)
  int64_t head_dim = 0;
  // [num_layers] lists of KV head indices (each in [0, num_kv_heads)): which
  // heads of each layer live in which pool. Every head of a layer appears in
  // exactly one of the two lists; the order of a list is the head's slot in
  // that pool's storage.
  std::vector<std::vector<int32_t>> retrieval_heads = {};
  std::vector<std::vector<int32_t>> streaming_heads = {};
  int64_t num_retrieval_pages = 0;  // physical pages of the retrieval pool
  int64_t num_streaming_pages = 0;  // physical pages of the streaming pool
  // Streaming heads' windows in tokens: prefill (sink, local incl. self) and
  // decode (sink, local incl. the current token).
  int64_t prefill_sink = 128;
  int64_t prefill_local = 8192;
  int64_t decode_sink = 128;
  int64_t decode_local = 256;
  // Longest prefill chunk (tokens of one sequence in one step): the prefill
  // ring also holds the keys of a whole chunk, so that the first query of a
  // chunk still finds its window after the chunk's later tokens are stored.
  int64_t prefill_chunk = 512;

  // Every KV head of every layer a retrieval head (the dense engine). Uses
  // num_layers and num_kv_heads.
  void SetAllHeadsRetrieval();
  // roles[l][h]: 1 = retrieval, 0 = streaming (the `inspect` roles format).
  // InvalidArgument unless roles is [num_layers][num_kv_heads] of 0/1.
  Status SetHeadRoles(const std::vector<std::vector<int>>& roles);

  // Every field in range, head lists a partition of each layer's KV heads, a
  // pool with heads has pages. Call before building a KvCacheManager.
  Status Validate() const;

  // Derived values (meaningful once Validate() passes).
  int64_t logical_pages_per_page() const { return page_size / logical_page_size; }  // g
  bool has_retrieval_heads() const;
  bool has_streaming_heads() const;
  // S: pages that keep the sink tokens for the whole life of a sequence. Sized
  // for the larger of the two sink windows so that the sink never changes.
  int64_t sink_pages() const;
  // W while prefilling: ceil((local + chunk - 1) / P) + 1 (the window of the
  // chunk's first query plus the rest of the chunk; a span not page-aligned
  // touches one page more), at least decode's width so that decode's ring is
  // never wider than prefill's.
  int64_t prefill_ring_pages() const;
  // W once a sequence decodes: ceil(decode_local / P) + 1.
  int64_t decode_ring_pages() const;
  int64_t total_pages(KvPool pool) const {
    return pool == KvPool::kRetrieval ? num_retrieval_pages : num_streaming_pages;
  }
  const std::vector<int32_t>& pool_heads(KvPool pool, int64_t layer) const {
    return (pool == KvPool::kRetrieval ? retrieval_heads : streaming_heads)[static_cast<size_t>(layer)];
  }
};

}  // namespace lserve
