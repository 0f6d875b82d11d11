#include "kernels/cpu/kv_append.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"

namespace lserve {

// Pool head slots are independent (each has its own cache rows and
// statistics), so threads split the slots and each applies all tokens in
// order, which keeps the set-then-merge rule of the statistics.
void KvAppendCpu(const KvAppendParams& p, ThreadPool& pool) {
  if (p.n_pool_heads <= 0 || p.n_tokens <= 0) return;
  const int64_t d = p.head_dim;
  const int64_t logical_per_page = p.k_stats != nullptr ? p.page_size / p.logical_page_size : 0;
  if (p.k_stats != nullptr) LSERVE_CHECK(p.logical_page_size > 0 && p.page_size % p.logical_page_size == 0);
  const int64_t max_chunks = std::max<int64_t>(1, p.n_tokens * p.n_pool_heads * d / 2048);
  pool.ParallelFor(p.n_pool_heads, max_chunks, [&](int64_t b, int64_t e) {
    for (int64_t slot = b; slot < e; ++slot) {
      const int64_t kv_head = p.pool_heads[slot];
      LSERVE_CHECK(kv_head >= 0 && kv_head < p.n_kv_heads);
      for (int64_t t = 0; t < p.n_tokens; ++t) {
        const int64_t page = p.slot_page[t];
        if (page < 0) continue;
        const int64_t offset = p.slot_offset[t];
        LSERVE_CHECK(offset >= 0 && offset < p.page_size);
        const float* k_src = p.k + (t * p.n_kv_heads + kv_head) * d;
        const float* v_src = p.v + (t * p.n_kv_heads + kv_head) * d;
        const int64_t dst = ((page * p.n_pool_heads + slot) * p.page_size + offset) * d;
        std::memcpy(p.k_cache + dst, k_src, static_cast<size_t>(d) * sizeof(float));
        std::memcpy(p.v_cache + dst, v_src, static_cast<size_t>(d) * sizeof(float));
        if (p.k_stats == nullptr) continue;
        float* stat_max =
            p.k_stats + (((page * p.n_pool_heads + slot) * logical_per_page + offset / p.logical_page_size) * 2) * d;
        float* stat_min = stat_max + d;
        if (p.positions[t] % p.logical_page_size == 0) {
          std::memcpy(stat_max, k_src, static_cast<size_t>(d) * sizeof(float));
          std::memcpy(stat_min, k_src, static_cast<size_t>(d) * sizeof(float));
        } else {
          for (int64_t c = 0; c < d; ++c) {
            stat_max[c] = std::max(stat_max[c], k_src[c]);
            stat_min[c] = std::min(stat_min[c], k_src[c]);
          }
        }
      }
    }
  });
}

}  // namespace lserve
