// The decode page selector: planted needles, top-K against f64 scores, ties,
// zero/one page, streaming heads, pages past a sequence's end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu/page_selector.h"
#include "kernels/ref/page_selector.h"
#include "kernels/ref/sparse_attention.h"

namespace lserve::conformance {
namespace {

// Sequences with random post-RoPE keys in a shuffled retrieval pool (one spare
// page per table); key statistics exactly as the KV append keeps them, NaN for
// every logical page without a token (and for the spare pages).
struct SelectorBatch {
  int64_t ps, lps, d, n_kv_heads, n_q_heads, n_r = 0, max_pages;
  std::vector<int64_t> kv_len, start_r, n_selected;
  std::vector<int32_t> table_r, pool_slot, selected;
  std::vector<int8_t> modes;
  std::vector<std::vector<float>> keys;  // [seq * n_kv_heads + kv_head][kv_len, d]
  std::vector<float> q, stats;
  PageSelectorParams params{};

  SelectorBatch(int64_t page_size, int64_t logical, int64_t head_dim, int64_t group, std::vector<int8_t> head_modes,
                std::vector<int64_t> lengths, int64_t k_pages, std::mt19937_64& rng, float key_range = 0.1f)
      : ps(page_size), lps(logical), d(head_dim), n_kv_heads(static_cast<int64_t>(head_modes.size())),
        n_q_heads(n_kv_heads * group), max_pages(k_pages), kv_len(std::move(lengths)), modes(std::move(head_modes)) {
    for (int8_t m : modes) pool_slot.push_back(m == kHeadModeRetrieval ? static_cast<int32_t>(n_r++) : 0);
    int64_t total = 0;
    for (int64_t len : kv_len) total += (len + ps - 1) / ps + 1;
    std::vector<int32_t> ids(static_cast<size_t>(total));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    start_r.push_back(0);
    for (size_t s = 0; s < kv_len.size(); ++s) {
      for (int64_t i = 0; i <= (kv_len[s] + ps - 1) / ps; ++i) table_r.push_back(ids[table_r.size()]);
      start_r.push_back(static_cast<int64_t>(table_r.size()));
      for (int64_t h = 0; h < n_kv_heads; ++h) keys.push_back(RandomFloats(rng, kv_len[s] * d, -key_range, key_range));
    }
    stats.assign(static_cast<size_t>(total * n_r * (ps / lps) * 2 * d), NAN);
    RebuildStats();
    q = RandomFloats(rng, static_cast<int64_t>(kv_len.size()) * n_q_heads * d);
    selected.assign(kv_len.size() * n_kv_heads * std::max<int64_t>(1, max_pages), -1);
    n_selected.assign(kv_len.size() * n_kv_heads, -1);
    PageSelectorParams& p = params;
    p.q = q.data();
    p.n_q_heads = n_q_heads;
    p.n_kv_heads = n_kv_heads;
    p.head_dim = d;
    p.n_seqs = static_cast<int64_t>(kv_len.size());
    p.kv_len = kv_len.data();
    p.head_mode = modes.data();
    p.pool_slot = pool_slot.data();
    p.page_table_r = table_r.data();
    p.page_table_start_r = start_r.data();
    p.k_stats = stats.data();
    p.n_retrieval_heads = n_r;
    p.page_size = ps;
    p.logical_page_size = lps;
    p.max_pages = max_pages;
    p.selected_pages = selected.data();
    p.n_selected = n_selected.data();
  }

  void RebuildStats() {
    const int64_t g = ps / lps;
    for (size_t s = 0; s < kv_len.size(); ++s) {
      for (int64_t h = 0; h < n_kv_heads; ++h) {
        if (modes[h] != kHeadModeRetrieval) continue;
        const std::vector<float>& k = keys[s * n_kv_heads + h];
        for (int64_t j = 0; j < kv_len[s]; ++j) {
          const int64_t page = table_r[start_r[s] + j / ps];
          float* mx = stats.data() + ((page * n_r + pool_slot[h]) * g + (j % ps) / lps) * 2 * d;
          float* mn = mx + d;
          for (int64_t c = 0; c < d; ++c) {
            const bool first = j % lps == 0;
            mx[c] = first ? k[j * d + c] : std::max(mx[c], k[j * d + c]);
            mn[c] = first ? k[j * d + c] : std::min(mn[c], k[j * d + c]);
          }
        }
      }
    }
  }

  std::vector<int32_t> List(int64_t s, int64_t h) const {
    const int64_t list = s * n_kv_heads + h;
    const int64_t n = n_selected[list];
    if (n < 0) return {-1};
    return {selected.begin() + list * std::max<int64_t>(1, max_pages), selected.begin() + list * std::max<int64_t>(1, max_pages) + n};
  }

  // f64 page score of KV head h of sequence s (max over logical pages with tokens and the group).
  double PageScore(int64_t s, int64_t h, int64_t b) const {
    const int64_t group = n_q_heads / n_kv_heads;
    const std::vector<float>& k = keys[s * n_kv_heads + h];
    double best = -INFINITY;
    for (int64_t l0 = b * ps; l0 < std::min((b + 1) * ps, kv_len[s]); l0 += lps) {
      for (int64_t qh = h * group; qh < (h + 1) * group; ++qh) {
        double score = 0.0;
        for (int64_t c = 0; c < d; ++c) {
          double mx = -INFINITY, mn = INFINITY;
          for (int64_t j = l0; j < std::min(l0 + lps, kv_len[s]); ++j) {
            mx = std::max<double>(mx, k[j * d + c]);
            mn = std::min<double>(mn, k[j * d + c]);
          }
          const double qc = q[(s * n_q_heads + qh) * d + c];
          score += std::max(qc * mx, qc * mn);
        }
        best = std::max(best, score);
      }
    }
    return best;
  }
};

// Selects with the reference and the CPU kernel (bit-identical lists) and checks
// the structure: ascending, newest last, min(K, n) pages, none past the end.
void SelectAndCheckStructure(SelectorBatch& b, ThreadPool& pool) {
  std::fill(b.selected.begin(), b.selected.end(), -1);
  std::fill(b.n_selected.begin(), b.n_selected.end(), -1);
  SelectPagesRef(b.params);
  const std::vector<int32_t> ref_sel = b.selected;
  const std::vector<int64_t> ref_n = b.n_selected;
  std::fill(b.selected.begin(), b.selected.end(), -1);
  std::fill(b.n_selected.begin(), b.n_selected.end(), -1);
  SelectPagesCpu(b.params, pool);
  EXPECT_EQ(b.selected, ref_sel);
  EXPECT_EQ(b.n_selected, ref_n);
  for (int64_t s = 0; s < b.params.n_seqs; ++s) {
    const int64_t n_pages = (b.kv_len[s] + b.ps - 1) / b.ps;
    for (int64_t h = 0; h < b.n_kv_heads; ++h) {
      const std::vector<int32_t> sel = b.List(s, h);
      if (b.modes[h] != kHeadModeRetrieval) {
        EXPECT_TRUE(sel.empty());
        continue;
      }
      ASSERT_EQ(static_cast<int64_t>(sel.size()), std::min(b.max_pages, n_pages)) << "seq " << s << " head " << h;
      EXPECT_TRUE(std::is_sorted(sel.begin(), sel.end()) && std::adjacent_find(sel.begin(), sel.end()) == sel.end());
      if (!sel.empty()) EXPECT_EQ(sel.back(), n_pages - 1);
      for (int32_t page : sel) EXPECT_TRUE(page >= 0 && page < n_pages);
    }
  }
}

TEST(ConformancePageSelector, FindsPlantedNeedleWhereverItSits) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  int variant = 0;
  for (const auto& [ps, lps] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {16, 8}, {32, 16}, {64, 16}}) {
    for (const int64_t len : {5 * ps + 7, 4 * ps, 3 * ps + 1}) {
      const int64_t group = std::vector<int64_t>{1, 4, 8}[variant++ % 3];
      for (int64_t k_pages : {2, 3}) {
        SelectorBatch b(ps, lps, 32, group, {kHeadModeRetrieval, kHeadModeStreaming, kHeadModeRetrieval}, {len, 37},
                        k_pages, rng);
        const int64_t n_pages = (len + ps - 1) / ps;
        // Every logical page that holds tokens, the partial last one included.
        for (int64_t l0 = 0; l0 < len; l0 += lps) {
          SCOPED_TRACE(testing::Message() << "P=" << ps << " L=" << lps << " len=" << len << " needle at " << l0
                                          << " K=" << k_pages << " group=" << group);
          SelectorBatch nb = b;
          nb.params.q = nb.q.data();
          nb.params.kv_len = nb.kv_len.data();
          nb.params.head_mode = nb.modes.data();
          nb.params.pool_slot = nb.pool_slot.data();
          nb.params.page_table_r = nb.table_r.data();
          nb.params.page_table_start_r = nb.start_r.data();
          nb.params.k_stats = nb.stats.data();
          nb.params.selected_pages = nb.selected.data();
          nb.params.n_selected = nb.n_selected.data();
          // The needle aligns with one query head of KV head 2's group.
          const int64_t kv_head = 2, q_head = kv_head * group + (group - 1);
          std::vector<float>& keys = nb.keys[kv_head];
          for (int64_t j = l0; j < std::min(l0 + lps, len); ++j) {
            for (int64_t c = 0; c < nb.d; ++c) keys[j * nb.d + c] = nb.q[q_head * nb.d + c] > 0 ? 2.0f : -2.0f;
          }
          nb.RebuildStats();
          SelectAndCheckStructure(nb, pool);
          const std::vector<int32_t> sel = nb.List(0, kv_head);
          EXPECT_NE(std::find(sel.begin(), sel.end(), static_cast<int32_t>(l0 / ps)), sel.end());
          EXPECT_EQ(sel.back(), n_pages - 1);
        }
      }
    }
  }
}

TEST(ConformancePageSelector, TopPagesMatchF64Scores) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(3);
  for (int64_t k_pages : {0, 1, 2, 4, 9, 16, 40}) {
    SCOPED_TRACE(testing::Message() << "K=" << k_pages);
    SelectorBatch b(16, 16, 64, 4, {kHeadModeRetrieval, kHeadModeRetrieval}, {1, 3, 17, 97, 129, 257, 256}, k_pages,
                    rng, 1.0f);
    SelectAndCheckStructure(b, pool);
    for (int64_t s = 0; s < b.params.n_seqs; ++s) {
      const int64_t n_pages = (b.kv_len[s] + b.ps - 1) / b.ps;
      for (int64_t h = 0; h < b.n_kv_heads; ++h) {
        const std::vector<int32_t> sel = b.List(s, h);
        if (sel.size() < 2 || n_pages <= k_pages) continue;
        double worst_kept = INFINITY, best_dropped = -INFINITY;
        for (int64_t page = 0; page + 1 < n_pages; ++page) {
          const bool kept = std::find(sel.begin(), sel.end(), page) != sel.end();
          const double score = b.PageScore(s, h, page);
          if (kept) worst_kept = std::min(worst_kept, score);
          else best_dropped = std::max(best_dropped, score);
        }
        EXPECT_GE(worst_kept, best_dropped - 1e-4) << "seq " << s << " head " << h;
      }
    }
  }
}

TEST(ConformancePageSelector, TiesGoToLowerPagesAndZeroOrOnePage) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  SelectorBatch b(32, 16, 16, 2, {kHeadModeRetrieval}, {32 * 10 + 3, 0, 64}, 4, rng);
  for (auto& k : b.keys) std::fill(k.begin(), k.end(), 0.0f);  // every score 0
  b.RebuildStats();
  SelectAndCheckStructure(b, pool);
  EXPECT_EQ(b.List(0, 0), (std::vector<int32_t>{0, 1, 2, 10}));
  EXPECT_TRUE(b.List(1, 0).empty());  // no token: no page
  EXPECT_EQ(b.List(2, 0), (std::vector<int32_t>{0, 1}));
  for (int64_t k_pages : {0, 1}) {
    b.max_pages = b.params.max_pages = k_pages;
    SelectAndCheckStructure(b, pool);
    EXPECT_EQ(b.List(0, 0), k_pages == 0 ? std::vector<int32_t>{} : std::vector<int32_t>{10});
    EXPECT_EQ(b.List(2, 0), k_pages == 0 ? std::vector<int32_t>{} : std::vector<int32_t>{1});
  }
}

}  // namespace
}  // namespace lserve::conformance
