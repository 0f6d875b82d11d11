#include "kvcache/kv_cache_config.h"

#include <algorithm>
#include <limits>
#include <string>

namespace lserve {

const char* KvPoolName(KvPool pool) {
  switch (pool) {
    case KvPool::kRetrieval: return "retrieval";
    case KvPool::kStreaming: return "streaming";
  }
  return "unknown";
}

namespace {

// Far above any released model, low enough that every element count of
// kv_layout.h is checked for overflow rather than hitting it by accident.
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxKvHeads = int64_t{1} << 12;
constexpr int64_t kMaxHeadDim = int64_t{1} << 12;
constexpr int64_t kMaxPages = std::numeric_limits<int32_t>::max();  // page ids are int32
constexpr int64_t kMaxWindow = int64_t{1} << 30;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

Status CheckRange(const char* name, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return InvalidArgument(std::string("kv cache: ") + name + " = " + std::to_string(v) + " is outside [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return Status::Ok();
}

}  // namespace

void KvCacheConfig::SetAllHeadsRetrieval() {
  retrieval_heads.assign(static_cast<size_t>(std::max<int64_t>(num_layers, 0)), {});
  streaming_heads.assign(retrieval_heads.size(), {});
  for (auto& heads : retrieval_heads) {
    for (int64_t h = 0; h < num_kv_heads; ++h) heads.push_back(static_cast<int32_t>(h));
  }
}

Status KvCacheConfig::SetHeadRoles(const std::vector<std::vector<int>>& roles) {
  if (static_cast<int64_t>(roles.size()) != num_layers) {
    return InvalidArgument("kv cache: head roles have " + std::to_string(roles.size()) + " layers, the model " +
                           std::to_string(num_layers));
  }
  std::vector<std::vector<int32_t>> retrieval(roles.size()), streaming(roles.size());
  for (size_t l = 0; l < roles.size(); ++l) {
    if (static_cast<int64_t>(roles[l].size()) != num_kv_heads) {
      return InvalidArgument("kv cache: head roles of layer " + std::to_string(l) + " have " +
                             std::to_string(roles[l].size()) + " heads, the model " + std::to_string(num_kv_heads));
    }
    for (size_t h = 0; h < roles[l].size(); ++h) {
      const int role = roles[l][h];
      if (role != 0 && role != 1) {
        return InvalidArgument("kv cache: head role " + std::to_string(role) + " at layer " + std::to_string(l) +
                               " head " + std::to_string(h) + " is neither 0 (streaming) nor 1 (retrieval)");
      }
      (role == 1 ? retrieval : streaming)[l].push_back(static_cast<int32_t>(h));
    }
  }
  retrieval_heads = std::move(retrieval);
  streaming_heads = std::move(streaming);
  return Status::Ok();
}

Status KvCacheConfig::Validate() const {
  if (page_size != 16 && page_size != 32 && page_size != 64 && page_size != 128) {
    return InvalidArgument("kv cache: page size " + std::to_string(page_size) + " is not 16, 32, 64 or 128");
  }
  if (logical_page_size < 1 || page_size % logical_page_size != 0) {
    return InvalidArgument("kv cache: logical page size " + std::to_string(logical_page_size) +
                           " does not divide the page size " + std::to_string(page_size));
  }
  LSERVE_RETURN_IF_ERROR(CheckRange("num_layers", num_layers, 1, kMaxLayers));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_kv_heads", num_kv_heads, 1, kMaxKvHeads));
  LSERVE_RETURN_IF_ERROR(CheckRange("head_dim", head_dim, 1, kMaxHeadDim));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_retrieval_pages", num_retrieval_pages, 0, kMaxPages));
  LSERVE_RETURN_IF_ERROR(CheckRange("num_streaming_pages", num_streaming_pages, 0, kMaxPages));
  LSERVE_RETURN_IF_ERROR(CheckRange("prefill_sink", prefill_sink, 0, kMaxWindow));
  LSERVE_RETURN_IF_ERROR(CheckRange("prefill_local", prefill_local, 1, kMaxWindow));
  LSERVE_RETURN_IF_ERROR(CheckRange("decode_sink", decode_sink, 0, kMaxWindow));
  LSERVE_RETURN_IF_ERROR(CheckRange("decode_local", decode_local, 1, kMaxWindow));
  LSERVE_RETURN_IF_ERROR(CheckRange("prefill_chunk", prefill_chunk, 1, kMaxWindow));
  if (static_cast<int64_t>(retrieval_heads.size()) != num_layers ||
      static_cast<int64_t>(streaming_heads.size()) != num_layers) {
    return InvalidArgument("kv cache: head lists cover " + std::to_string(retrieval_heads.size()) + " / " +
                           std::to_string(streaming_heads.size()) + " layers, the model has " +
                           std::to_string(num_layers));
  }
  for (int64_t l = 0; l < num_layers; ++l) {
    std::vector<int> seen(static_cast<size_t>(num_kv_heads), 0);
    for (const KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
      for (const int32_t h : pool_heads(pool, l)) {
        if (h < 0 || h >= num_kv_heads) {
          return InvalidArgument("kv cache: layer " + std::to_string(l) + " lists KV head " + std::to_string(h) +
                                 " of " + std::to_string(num_kv_heads));
        }
        if (seen[static_cast<size_t>(h)]++) {
          return InvalidArgument("kv cache: layer " + std::to_string(l) + " lists KV head " + std::to_string(h) +
                                 " twice");
        }
      }
    }
    for (int64_t h = 0; h < num_kv_heads; ++h) {
      if (!seen[static_cast<size_t>(h)]) {
        return InvalidArgument("kv cache: layer " + std::to_string(l) + " gives KV head " + std::to_string(h) +
                               " no pool");
      }
    }
  }
  if (has_retrieval_heads() && num_retrieval_pages == 0) {
    return InvalidArgument("kv cache: the model has retrieval heads but the retrieval pool has no pages");
  }
  if (has_streaming_heads() && num_streaming_pages == 0) {
    return InvalidArgument("kv cache: the model has streaming heads but the streaming pool has no pages");
  }
  return Status::Ok();
}

bool KvCacheConfig::has_retrieval_heads() const {
  return std::any_of(retrieval_heads.begin(), retrieval_heads.end(), [](const auto& h) { return !h.empty(); });
}

bool KvCacheConfig::has_streaming_heads() const {
  return std::any_of(streaming_heads.begin(), streaming_heads.end(), [](const auto& h) { return !h.empty(); });
}

int64_t KvCacheConfig::sink_pages() const { return CeilDiv(std::max(prefill_sink, decode_sink), page_size); }

int64_t KvCacheConfig::prefill_ring_pages() const {
  return CeilDiv(std::max(prefill_local + prefill_chunk - 1, decode_local), page_size) + 1;
}

int64_t KvCacheConfig::decode_ring_pages() const { return CeilDiv(decode_local, page_size) + 1; }

}  // namespace lserve
