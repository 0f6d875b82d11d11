#include "model/kv_storage.h"

#include <array>
#include <string>

#include "kernels/ref/sparse_attention.h"

namespace lserve {
namespace {

Result<DeviceBuffer> AllocateFilled(Backend& backend, int64_t elements, bool poison) {
  const uint64_t bytes = static_cast<uint64_t>(elements) * sizeof(float);
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer b, backend.Allocate(bytes));
  LSERVE_RETURN_IF_ERROR(backend.Memset(b, 0, bytes, poison ? 0xff : 0x00));
  return b;
}

}  // namespace

Result<KvStorage> KvStorage::Allocate(const KvCacheConfig& config, Backend& backend, bool poison) {
  LSERVE_RETURN_IF_ERROR(config.Validate());
  LSERVE_ASSIGN_OR_RETURN(KvLayout layout, KvLayout::Create(config, sizeof(float)));
  KvStorage s(config, layout);
  s.layers_.resize(static_cast<size_t>(config.num_layers));
  s.heads_.resize(static_cast<size_t>(config.num_layers));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    std::vector<int8_t> mode(static_cast<size_t>(config.num_kv_heads), kHeadModeRetrieval);
    std::vector<int32_t> slot(static_cast<size_t>(config.num_kv_heads), 0);
    for (KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
      const std::vector<int32_t>& heads = config.pool_heads(pool, l);
      for (size_t i = 0; i < heads.size(); ++i) {
        mode[static_cast<size_t>(heads[i])] = pool == KvPool::kRetrieval ? kHeadModeRetrieval : kHeadModeStreaming;
        slot[static_cast<size_t>(heads[i])] = static_cast<int32_t>(i);
      }
    }
    KvLayerHeads& lh = s.heads_[static_cast<size_t>(l)];
    LSERVE_ASSIGN_OR_RETURN(lh.head_mode, backend.Allocate(mode.size()));
    LSERVE_RETURN_IF_ERROR(backend.CopyToDevice(lh.head_mode, 0, mode.data(), mode.size()));
    LSERVE_ASSIGN_OR_RETURN(lh.pool_slot, backend.Allocate(slot.size() * sizeof(int32_t)));
    LSERVE_RETURN_IF_ERROR(backend.CopyToDevice(lh.pool_slot, 0, slot.data(), slot.size() * sizeof(int32_t)));
    for (KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
      const PoolLayerLayout& pl = layout.at(l, pool);
      KvPoolStorage& ps = s.layers_[static_cast<size_t>(l)][static_cast<size_t>(pool)];
      ps.n_heads = pl.n_heads;
      if (pl.n_heads == 0 || pl.kv_elements == 0) continue;
      LSERVE_ASSIGN_OR_RETURN(ps.k, AllocateFilled(backend, pl.kv_elements, poison));
      LSERVE_ASSIGN_OR_RETURN(ps.v, AllocateFilled(backend, pl.kv_elements, poison));
      if (pl.stats_elements > 0) {
        LSERVE_ASSIGN_OR_RETURN(ps.stats, AllocateFilled(backend, pl.stats_elements, poison));
      }
      const std::vector<int32_t>& heads = config.pool_heads(pool, l);
      LSERVE_ASSIGN_OR_RETURN(ps.heads, backend.Allocate(heads.size() * sizeof(int32_t)));
      LSERVE_RETURN_IF_ERROR(backend.CopyToDevice(ps.heads, 0, heads.data(), heads.size() * sizeof(int32_t)));
      s.bytes_ += ps.k.size() + ps.v.size() + ps.stats.size();
    }
  }
  return s;
}

Status KvStorage::CheckManager(const KvCacheManager& kv) const {
  const KvCacheConfig& a = kv.config();
  const KvCacheConfig& b = config_;
  if (a.page_size != b.page_size || a.logical_page_size != b.logical_page_size || a.num_layers != b.num_layers ||
      a.num_kv_heads != b.num_kv_heads || a.head_dim != b.head_dim ||
      a.num_retrieval_pages != b.num_retrieval_pages || a.num_streaming_pages != b.num_streaming_pages ||
      a.retrieval_heads != b.retrieval_heads || a.streaming_heads != b.streaming_heads ||
      a.prefill_sink != b.prefill_sink || a.prefill_local != b.prefill_local || a.decode_sink != b.decode_sink ||
      a.decode_local != b.decode_local || a.prefill_chunk != b.prefill_chunk) {
    return InvalidArgument("the KV cache manager was built from another configuration than the model's KV storage "
                           "(build it from LlamaModel::kv_cache_config())");
  }
  return Status::Ok();
}

}  // namespace lserve
