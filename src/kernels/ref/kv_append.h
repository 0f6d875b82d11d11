// KV append: writes the post-RoPE keys and the values of n tokens into the
// paged pool of one layer and keeps the per-logical-page key statistics
// (channel-wise max and min of the keys, DESIGN.md §4 "Key statistics").
//
// Worked example (page_size 64, logical_page_size 16): a token at position
// 35 stored at (page 7, offset 35) belongs to logical page 35 / 16 = 2 of
// page 7; its key is merged into k_stats[7, slot, 2, 0, :] (max) and
// k_stats[7, slot, 2, 1, :] (min). A token at position 32 (32 % 16 == 0)
// SETS those statistics to its own key, so stale memory never leaks in.
#pragma once

#include <cstdint>

namespace lserve {

struct KvAppendParams {
  const float* k;              // [n_tokens, n_kv_heads, head_dim] f32, after RoPE
  const float* v;              // [n_tokens, n_kv_heads, head_dim] f32
  int64_t n_tokens, n_kv_heads, head_dim;
  const int32_t* pool_heads;   // [n_pool_heads]: the kv head stored in each head slot of this pool
  int64_t n_pool_heads;        // may be 0 (nothing to do)
  float* k_cache;              // [num_pages, n_pool_heads, page_size, head_dim] f32
  float* v_cache;              // [num_pages, n_pool_heads, page_size, head_dim] f32
  int64_t page_size;
  const int32_t* slot_page;    // [n_tokens] physical page of each token; -1 = token not stored
  const int32_t* slot_offset;  // [n_tokens] offset inside the page, in [0, page_size)
  float* k_stats;              // nullable; [num_pages, n_pool_heads, page_size / logical_page_size, 2, head_dim]
                               // f32, index 0 of the "2" axis = max, 1 = min
  int64_t logical_page_size;   // divides page_size (used only with k_stats)
  const int64_t* positions;    // [n_tokens] absolute positions; a token with pos % logical_page_size == 0
                               // sets its logical page's statistics, any other token merges into them.
                               // Tokens are applied in order (a later token of the same slot wins).
};

void KvAppendRef(const KvAppendParams& p);

}  // namespace lserve
