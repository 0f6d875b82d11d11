#include "kernels/ref/kv_append.h"

#include <algorithm>

#include "core/check.h"

namespace lserve {

void KvAppendRef(const KvAppendParams& p) {
  const int64_t d = p.head_dim;
  const int64_t logical_per_page = p.k_stats != nullptr ? p.page_size / p.logical_page_size : 0;
  if (p.k_stats != nullptr) LSERVE_CHECK(p.logical_page_size > 0 && p.page_size % p.logical_page_size == 0);
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const int64_t page = p.slot_page[t];
    if (page < 0) continue;
    const int64_t offset = p.slot_offset[t];
    LSERVE_CHECK(offset >= 0 && offset < p.page_size);
    for (int64_t slot = 0; slot < p.n_pool_heads; ++slot) {
      const int64_t kv_head = p.pool_heads[slot];
      LSERVE_CHECK(kv_head >= 0 && kv_head < p.n_kv_heads);
      const float* k_src = p.k + (t * p.n_kv_heads + kv_head) * d;
      const float* v_src = p.v + (t * p.n_kv_heads + kv_head) * d;
      const int64_t dst = ((page * p.n_pool_heads + slot) * p.page_size + offset) * d;
      std::copy(k_src, k_src + d, p.k_cache + dst);
      std::copy(v_src, v_src + d, p.v_cache + dst);
      if (p.k_stats == nullptr) continue;
      const int64_t logical = offset / p.logical_page_size;
      float* stat_max = p.k_stats + (((page * p.n_pool_heads + slot) * logical_per_page + logical) * 2) * d;
      float* stat_min = stat_max + d;
      if (p.positions[t] % p.logical_page_size == 0) {
        std::copy(k_src, k_src + d, stat_max);
        std::copy(k_src, k_src + d, stat_min);
      } else {
        for (int64_t c = 0; c < d; ++c) {
          stat_max[c] = std::max(stat_max[c], k_src[c]);
          stat_min[c] = std::min(stat_min[c], k_src[c]);
        }
      }
    }
  }
}

}  // namespace lserve
