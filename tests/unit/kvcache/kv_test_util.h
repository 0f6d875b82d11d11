// Configs and checks shared by the KV-cache tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kvcache/kv_cache.h"

namespace lserve::kvtest {

struct Windows {
  int64_t prefill_sink = 128;
  int64_t prefill_local = 8192;
  int64_t decode_sink = 128;
  int64_t decode_local = 256;
  int64_t prefill_chunk = 1;  // 1: the prefill ring is the prefill window's
};

// Two layers of two KV heads. With streaming: layer 0 = {retrieval, streaming},
// layer 1 = {retrieval, retrieval} (so one layer has no streaming heads).
inline KvCacheConfig TestConfig(int64_t page_size, int64_t retrieval_pages, int64_t streaming_pages,
                                bool with_streaming, Windows w = {}) {
  KvCacheConfig c{.page_size = page_size,
                  .logical_page_size = std::min<int64_t>(16, page_size),
                  .num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 4,
                  .num_retrieval_pages = retrieval_pages,
                  .num_streaming_pages = streaming_pages,
                  .prefill_sink = w.prefill_sink,
                  .prefill_local = w.prefill_local,
                  .decode_sink = w.decode_sink,
                  .decode_local = w.decode_local,
                  .prefill_chunk = w.prefill_chunk};
  if (with_streaming) {
    EXPECT_TRUE(c.SetHeadRoles({{1, 0}, {1, 1}}).ok());
  } else {
    c.SetAllHeadsRetrieval();
  }
  return c;
}

inline KvCacheManager MakeManager(const KvCacheConfig& config) {
  Result<KvCacheManager> kv = KvCacheManager::Create(config);
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  return std::move(kv).value();
}

// CheckInvariant, plus: the pages all sequences hold are exactly the used pages.
inline ::testing::AssertionResult Consistent(const KvCacheManager& kv, const std::vector<int64_t>& live) {
  const Status s = kv.CheckInvariant();
  if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
  PageCounts held;
  for (const int64_t id : live) {
    held.retrieval += kv.PagesHeld(id).retrieval;
    held.streaming += kv.PagesHeld(id).streaming;
  }
  if (held.retrieval != kv.pool(KvPool::kRetrieval).used_pages() ||
      held.streaming != kv.pool(KvPool::kStreaming).used_pages()) {
    return ::testing::AssertionFailure() << "sequences hold " << held.retrieval << " + " << held.streaming
                                         << " pages, pools use " << kv.pool(KvPool::kRetrieval).used_pages()
                                         << " + " << kv.pool(KvPool::kStreaming).used_pages();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace lserve::kvtest
