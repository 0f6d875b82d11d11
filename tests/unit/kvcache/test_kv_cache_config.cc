#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "kvcache/kv_cache_config.h"
#include "kvcache/kv_layout.h"

namespace lserve {
namespace {

KvCacheConfig DenseConfig() {
  KvCacheConfig c{.num_layers = 3, .num_kv_heads = 4, .head_dim = 8, .num_retrieval_pages = 10};
  c.SetAllHeadsRetrieval();
  return c;
}

// Layer 0: heads 0, 2 retrieval, 1, 3 streaming; layer 1: all streaming;
// layer 2: all retrieval.
KvCacheConfig MixedConfig() {
  KvCacheConfig c{.page_size = 32, .logical_page_size = 8, .num_layers = 3, .num_kv_heads = 4, .head_dim = 16,
                  .num_retrieval_pages = 10, .num_streaming_pages = 6};
  EXPECT_TRUE(c.SetHeadRoles({{1, 0, 1, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}}).ok());
  return c;
}

TEST(KvCacheConfig, DefaultsAreDesignValues) {
  const KvCacheConfig c;
  EXPECT_EQ(c.page_size, 64);
  EXPECT_EQ(c.logical_page_size, 16);
  EXPECT_EQ(c.prefill_sink, 128);
  EXPECT_EQ(c.prefill_local, 8192);
  EXPECT_EQ(c.decode_sink, 128);
  EXPECT_EQ(c.decode_local, 256);
  EXPECT_EQ(c.sink_pages(), 2);
  EXPECT_EQ(c.prefill_chunk, 512);
  EXPECT_EQ(c.prefill_ring_pages(), 137);  // ceil((8192 + 511) / 64) + 1
  EXPECT_EQ(c.decode_ring_pages(), 5);  // 7 pages per sequence in decode, as in LSERVE.md §0
  EXPECT_EQ(c.logical_pages_per_page(), 4);
}

TEST(KvCacheConfig, RingSizesForEveryPageSize) {
  for (const int64_t P : {16, 32, 64, 128}) {
    KvCacheConfig c = DenseConfig();
    c.page_size = P;
    ASSERT_TRUE(c.Validate().ok()) << P;
    EXPECT_EQ(c.sink_pages(), (128 + P - 1) / P) << P;
    EXPECT_EQ(c.prefill_ring_pages(), (8192 + 511 + P - 1) / P + 1) << P;
    EXPECT_EQ(c.decode_ring_pages(), 256 / P + 1) << P;
  }
  // Windows that are not page multiples round up; the larger of the prefill
  // and decode windows sizes the sink and the prefill ring.
  KvCacheConfig c = DenseConfig();
  c.prefill_sink = 4;
  c.decode_sink = 100;
  c.prefill_local = 200;
  c.decode_local = 300;
  c.prefill_chunk = 64;
  EXPECT_EQ(c.sink_pages(), 2);          // ceil(100 / 64)
  EXPECT_EQ(c.prefill_ring_pages(), 6);  // ceil(max(200 + 63, 300) / 64) + 1
  c.prefill_chunk = 200;
  EXPECT_EQ(c.prefill_ring_pages(), 8);  // ceil((200 + 199) / 64) + 1
  EXPECT_EQ(c.decode_ring_pages(), 6);
}

TEST(KvCacheConfig, ValidateAcceptsDenseAndMixedRoles) {
  EXPECT_TRUE(DenseConfig().Validate().ok()) << DenseConfig().Validate().ToString();
  const KvCacheConfig dense = DenseConfig();
  EXPECT_TRUE(dense.has_retrieval_heads());
  EXPECT_FALSE(dense.has_streaming_heads());
  const KvCacheConfig mixed = MixedConfig();
  EXPECT_TRUE(mixed.Validate().ok()) << mixed.Validate().ToString();
  EXPECT_EQ(mixed.retrieval_heads[0], (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(mixed.streaming_heads[0], (std::vector<int32_t>{1, 3}));
  EXPECT_TRUE(mixed.retrieval_heads[1].empty());
  EXPECT_TRUE(mixed.streaming_heads[2].empty());
  EXPECT_TRUE(mixed.has_streaming_heads());
}

TEST(KvCacheConfig, ValidateRejectsEachBadField) {
  auto rejects = [](KvCacheConfig c) { return c.Validate().code() == StatusCode::kInvalidArgument; };
  {
    KvCacheConfig c = DenseConfig();
    c.page_size = 48;
    EXPECT_TRUE(rejects(c));
    c.page_size = 256;
    EXPECT_TRUE(rejects(c));
  }
  {
    KvCacheConfig c = DenseConfig();
    c.logical_page_size = 24;
    EXPECT_TRUE(rejects(c));
    c.logical_page_size = 0;
    EXPECT_TRUE(rejects(c));
    c.logical_page_size = 64;  // one logical page per page is fine
    EXPECT_TRUE(c.Validate().ok());
  }
  for (auto mutate : std::vector<void (*)(KvCacheConfig&)>{
           [](KvCacheConfig& c) { c.num_layers = 0; },
           [](KvCacheConfig& c) { c.head_dim = 0; },
           [](KvCacheConfig& c) { c.num_retrieval_pages = -1; },
           [](KvCacheConfig& c) { c.num_retrieval_pages = int64_t{1} << 31; },
           [](KvCacheConfig& c) { c.num_retrieval_pages = 0; },  // retrieval heads, no pages
           [](KvCacheConfig& c) { c.prefill_local = 0; },
           [](KvCacheConfig& c) { c.prefill_chunk = 0; },
           [](KvCacheConfig& c) { c.decode_sink = -1; },
           [](KvCacheConfig& c) { c.retrieval_heads.pop_back(); },
           [](KvCacheConfig& c) { c.retrieval_heads[1] = {0, 1, 2}; },     // head 3 has no pool
           [](KvCacheConfig& c) { c.retrieval_heads[1] = {0, 1, 2, 2}; },  // head 2 twice
           [](KvCacheConfig& c) { c.retrieval_heads[1] = {0, 1, 2, 4}; },  // out of range
           [](KvCacheConfig& c) { c.streaming_heads[0] = {0}; },           // in both pools
           [](KvCacheConfig& c) { c.streaming_heads[0] = {0}; c.retrieval_heads[0] = {1, 2, 3}; },  // no streaming pages
       }) {
    KvCacheConfig c = DenseConfig();
    mutate(c);
    EXPECT_TRUE(rejects(c));
  }
}

TEST(KvCacheConfig, SetHeadRolesRejectsBadShapes) {
  KvCacheConfig c = DenseConfig();
  EXPECT_FALSE(c.SetHeadRoles({{1, 1, 1, 1}}).ok());  // 1 layer of 3
  EXPECT_FALSE(c.SetHeadRoles({{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}).ok());
  EXPECT_FALSE(c.SetHeadRoles({{1, 1, 1, 2}, {1, 1, 1, 1}, {1, 1, 1, 1}}).ok());
  EXPECT_TRUE(c.Validate().ok());  // unchanged after a refusal
  // A model whose every head streams needs no retrieval pages.
  ASSERT_TRUE(c.SetHeadRoles({{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}}).ok());
  c.num_retrieval_pages = 0;
  c.num_streaming_pages = 8;
  EXPECT_TRUE(c.Validate().ok());
}

TEST(KvLayout, StridesAndSizesPerLayerAndPool) {
  const KvCacheConfig c = MixedConfig();  // P 32, L 8, D 16, 10 retrieval + 6 streaming pages
  Result<KvLayout> layout = KvLayout::Create(c, 4);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  const PoolLayerLayout& r0 = layout->at(0, KvPool::kRetrieval);
  EXPECT_EQ(r0.n_heads, 2);
  EXPECT_EQ(r0.kv_token_stride, 16);
  EXPECT_EQ(r0.kv_head_stride, 32 * 16);
  EXPECT_EQ(r0.kv_page_stride, 2 * 32 * 16);
  EXPECT_EQ(r0.kv_elements, 10 * 2 * 32 * 16);
  EXPECT_EQ(r0.stats_logical_stride, 2 * 16);
  EXPECT_EQ(r0.stats_head_stride, 4 * 2 * 16);
  EXPECT_EQ(r0.stats_page_stride, 2 * 4 * 2 * 16);
  EXPECT_EQ(r0.stats_elements, 10 * 2 * 4 * 2 * 16);
  EXPECT_EQ(r0.bytes, (2 * r0.kv_elements + r0.stats_elements) * 4);
  const PoolLayerLayout& s0 = layout->at(0, KvPool::kStreaming);
  EXPECT_EQ(s0.n_heads, 2);
  EXPECT_EQ(s0.kv_elements, 6 * 2 * 32 * 16);
  EXPECT_EQ(s0.stats_elements, 0);  // no statistics in the streaming pool
  EXPECT_EQ(s0.bytes, 2 * s0.kv_elements * 4);
  // Layers with no heads of a kind have no storage in that pool.
  EXPECT_EQ(layout->at(1, KvPool::kRetrieval).n_heads, 0);
  EXPECT_EQ(layout->at(1, KvPool::kRetrieval).bytes, 0);
  EXPECT_EQ(layout->at(2, KvPool::kStreaming).bytes, 0);
  EXPECT_EQ(layout->at(1, KvPool::kStreaming).n_heads, 4);
  EXPECT_EQ(layout->at(2, KvPool::kRetrieval).n_heads, 4);
  int64_t retrieval = 0, streaming = 0;
  for (int64_t l = 0; l < 3; ++l) {
    retrieval += layout->at(l, KvPool::kRetrieval).bytes;
    streaming += layout->at(l, KvPool::kStreaming).bytes;
  }
  EXPECT_EQ(layout->pool_bytes(KvPool::kRetrieval), retrieval);
  EXPECT_EQ(layout->pool_bytes(KvPool::kStreaming), streaming);
  EXPECT_EQ(layout->total_bytes(), retrieval + streaming);
  // Element size is a parameter.
  Result<KvLayout> half = KvLayout::Create(c, 2);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->total_bytes() * 2, layout->total_bytes());
  EXPECT_FALSE(KvLayout::Create(c, 0).ok());
}

TEST(KvLayout, IndicesTileTheArraysExactlyOnce) {
  const KvCacheConfig c = MixedConfig();
  const KvLayout layout = *KvLayout::Create(c, 4);
  const PoolLayerLayout& r = layout.at(0, KvPool::kRetrieval);
  std::vector<int> kv_hits(static_cast<size_t>(r.kv_elements), 0);
  std::vector<int> stats_hits(static_cast<size_t>(r.stats_elements), 0);
  for (int64_t page = 0; page < c.num_retrieval_pages; ++page) {
    for (int64_t h = 0; h < r.n_heads; ++h) {
      for (int64_t t = 0; t < c.page_size; ++t) {
        for (int64_t d = 0; d < c.head_dim; ++d) ++kv_hits[static_cast<size_t>(r.KvIndex(page, h, t) + d)];
      }
      for (int64_t lp = 0; lp < c.logical_pages_per_page(); ++lp) {
        // max row first, then min row, each head_dim wide
        EXPECT_EQ(r.StatsIndex(page, h, lp, true) - r.StatsIndex(page, h, lp, false), c.head_dim);
        for (const bool is_min : {false, true}) {
          for (int64_t d = 0; d < c.head_dim; ++d) ++stats_hits[static_cast<size_t>(r.StatsIndex(page, h, lp, is_min) + d)];
        }
      }
    }
  }
  for (const int hits : kv_hits) ASSERT_EQ(hits, 1);
  for (const int hits : stats_hits) ASSERT_EQ(hits, 1);
}

TEST(KvLayout, OverflowIsAnErrorNotAWrap) {
  KvCacheConfig c{.page_size = 128, .num_layers = 1, .num_kv_heads = 4096, .head_dim = 4096,
                  .num_retrieval_pages = std::numeric_limits<int32_t>::max()};
  c.SetAllHeadsRetrieval();
  ASSERT_TRUE(c.Validate().ok());
  Result<KvLayout> layout = KvLayout::Create(c, 4);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().code(), StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace lserve
