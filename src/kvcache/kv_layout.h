// KvLayout: element counts and strides of the KV storage the model allocates,
// per layer and pool, from a validated KvCacheConfig. Page ids index the
// leading dimension of every array (the same id in every layer).
//
//   K, V  [num_pages, n_pool_heads(l), P, D]
//   stats [num_pages, n_pool_heads(l), P/L, 2, D]   retrieval pool only:
//         per logical page, the channel-wise max of the post-RoPE keys, then
//         the min. The streaming pool has no stats (0 elements).
//
// Element sizes are a parameter (4 for the f32 CPU cache, 2 for bf16).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_cache_config.h"

namespace lserve {

struct PoolLayerLayout {
  int64_t n_heads = 0;  // n_pool_heads(l); 0 = this layer has no storage in the pool
  // K and V (each).
  int64_t kv_page_stride = 0;   // n_heads * P * D
  int64_t kv_head_stride = 0;   // P * D
  int64_t kv_token_stride = 0;  // D
  int64_t kv_elements = 0;      // num_pages * kv_page_stride
  // Key statistics (0 everywhere for the streaming pool).
  int64_t stats_page_stride = 0;     // n_heads * g * 2 * D
  int64_t stats_head_stride = 0;     // g * 2 * D
  int64_t stats_logical_stride = 0;  // 2 * D; max at +0, min at +D
  int64_t stats_elements = 0;        // num_pages * stats_page_stride
  int64_t bytes = 0;                 // (2 * kv_elements + stats_elements) * element_bytes

  // Element index of K/V[page][head_slot][token_in_page][0].
  int64_t KvIndex(int64_t page, int64_t head_slot, int64_t token_in_page) const {
    return page * kv_page_stride + head_slot * kv_head_stride + token_in_page * kv_token_stride;
  }
  // Element index of the max (is_min = false) or min row of a logical page.
  int64_t StatsIndex(int64_t page, int64_t head_slot, int64_t logical_in_page, bool is_min) const {
    return page * stats_page_stride + head_slot * stats_head_stride + logical_in_page * stats_logical_stride +
           (is_min ? stats_logical_stride / 2 : 0);
  }
};

class KvLayout {
 public:
  // Precondition: config.Validate() passed. InvalidArgument for an element
  // size outside [1, 16]; OutOfRange when a size overflows int64.
  static Result<KvLayout> Create(const KvCacheConfig& config, int64_t element_bytes);

  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t element_bytes() const { return element_bytes_; }
  // Precondition: 0 <= layer < num_layers().
  const PoolLayerLayout& at(int64_t layer, KvPool pool) const {
    return layers_[static_cast<size_t>(layer)][static_cast<size_t>(pool)];
  }
  int64_t pool_bytes(KvPool pool) const { return pool_bytes_[static_cast<size_t>(pool)]; }
  int64_t total_bytes() const { return pool_bytes_[0] + pool_bytes_[1]; }

 private:
  int64_t element_bytes_ = 0;
  std::vector<std::array<PoolLayerLayout, 2>> layers_;  // [layer][pool]
  std::array<int64_t, 2> pool_bytes_{};
};

}  // namespace lserve
