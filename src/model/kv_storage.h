// The KV storage a model holds on its backend: per layer and pool, the K and
// V arrays and (retrieval pool) the key statistics, laid out as KvLayout says
// for f32 elements, plus each pool's head-slot list. Indexed by the page ids
// a KvCacheManager built from config() hands out.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "kvcache/kv_cache.h"
#include "kvcache/kv_layout.h"

namespace lserve {

// Per layer, for the sparse kernels: each KV head's pool and slot in it.
struct KvLayerHeads {
  DeviceBuffer head_mode;  // [num_kv_heads] int8: kHeadModeRetrieval / kHeadModeStreaming
  DeviceBuffer pool_slot;  // [num_kv_heads] int32: the head's slot within its pool
};

struct KvPoolStorage {
  int64_t n_heads = 0;      // head slots of this pool in this layer (0 = no storage)
  DeviceBuffer k, v;        // [num_pages, n_heads, P, D] f32
  DeviceBuffer stats;       // [num_pages, n_heads, P/L, 2, D] f32 (retrieval pool only)
  DeviceBuffer heads;       // [n_heads] int32: the KV head of each slot
};

class KvStorage {
 public:
  // Validates `config` and allocates every array. poison: fill with NaN
  // (bytes 0xff) instead of zeros.
  static Result<KvStorage> Allocate(const KvCacheConfig& config, Backend& backend, bool poison);

  const KvCacheConfig& config() const { return config_; }
  const KvLayout& layout() const { return layout_; }
  uint64_t bytes() const { return bytes_; }
  // Precondition: 0 <= layer < config().num_layers.
  const KvPoolStorage& at(int64_t layer, KvPool pool) const {
    return layers_[static_cast<size_t>(layer)][static_cast<size_t>(pool)];
  }
  const KvLayerHeads& heads(int64_t layer) const { return heads_[static_cast<size_t>(layer)]; }
  // InvalidArgument unless `kv` was built from a config with this storage's
  // shape (page sizes, pages, layers, heads and their pool assignment).
  Status CheckManager(const KvCacheManager& kv) const;

 private:
  KvStorage(const KvCacheConfig& config, const KvLayout& layout) : config_(config), layout_(layout) {}

  KvCacheConfig config_;
  KvLayout layout_;
  uint64_t bytes_ = 0;
  std::vector<std::array<KvPoolStorage, 2>> layers_;  // [layer][pool]
  std::vector<KvLayerHeads> heads_;                   // [layer]
};

}  // namespace lserve
