#include "kvcache/kv_layout.h"

#include <string>

namespace lserve {

namespace {

// a * b into *out; false on int64 overflow.
bool MulInto(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool AddInto(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

}  // namespace

Result<KvLayout> KvLayout::Create(const KvCacheConfig& config, int64_t element_bytes) {
  if (element_bytes < 1 || element_bytes > 16) {
    return InvalidArgument("kv layout: element size " + std::to_string(element_bytes) + " bytes");
  }
  KvLayout layout;
  layout.element_bytes_ = element_bytes;
  layout.layers_.resize(static_cast<size_t>(config.num_layers));
  const int64_t P = config.page_size;
  const int64_t D = config.head_dim;
  const int64_t g = config.logical_pages_per_page();
  const Status overflow = OutOfRange("kv layout: storage size overflows int64");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    for (const KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
      PoolLayerLayout& p = layout.layers_[static_cast<size_t>(l)][static_cast<size_t>(pool)];
      const int64_t num_pages = config.total_pages(pool);
      p.n_heads = static_cast<int64_t>(config.pool_heads(pool, l).size());
      // n_heads, P, D, g are small (Validate caps them); only num_pages products can overflow.
      p.kv_token_stride = D;
      p.kv_head_stride = P * D;
      p.kv_page_stride = p.n_heads * P * D;
      if (!MulInto(num_pages, p.kv_page_stride, &p.kv_elements)) return overflow;
      if (pool == KvPool::kRetrieval) {
        p.stats_logical_stride = 2 * D;
        p.stats_head_stride = g * 2 * D;
        p.stats_page_stride = p.n_heads * g * 2 * D;
        if (!MulInto(num_pages, p.stats_page_stride, &p.stats_elements)) return overflow;
      }
      int64_t elements = 0;
      if (!AddInto(p.kv_elements, p.kv_elements, &elements) || !AddInto(elements, p.stats_elements, &elements) ||
          !MulInto(elements, element_bytes, &p.bytes)) {
        return overflow;
      }
      int64_t& pool_total = layout.pool_bytes_[static_cast<size_t>(pool)];
      if (!AddInto(pool_total, p.bytes, &pool_total)) return overflow;
    }
  }
  int64_t total = 0;
  if (!AddInto(layout.pool_bytes_[0], layout.pool_bytes_[1], &total)) return overflow;
  return layout;
}

}  // namespace lserve
