// Paged attention on the CPU: the batch is cut into work items (sequence x
// kv head x block of query rows, see attention_impl.h) pulled by the pool's
// threads from a shared counter, largest first. When there are too few items
// to keep the threads busy (decode of one or two long sequences), each
// item's key range is split into page-aligned parts whose partial states are
// combined with the log-sum-exp merge (merge.h).
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/merge.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/merge.h"

namespace lserve {
namespace cpu_detail {
namespace {

struct ScalarOps {
  static void Scores(const float* q, const float* k, int64_t n, int64_t d, float scale, float* s) {
    for (int64_t j = 0; j < n; ++j) {
      float dot = 0.0f;
      for (int64_t c = 0; c < d; ++c) dot += q[c] * k[j * d + c];
      s[j] = dot * scale;
    }
  }
  static float Max(const float* s, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
    return m;
  }
  static float ExpSubSum(float* s, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = std::exp(s[j] - m);
      sum += s[j];
    }
    return sum;
  }
  static void Scale(float* acc, float f, int64_t d) {
    for (int64_t c = 0; c < d; ++c) acc[c] *= f;
  }
  static void AccumulatePV(float* acc, const float* p, const float* v, int64_t n, int64_t d) {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < d; ++c) acc[c] += p[j] * v[j * d + c];
  }
};

}  // namespace

void AttendItemScalar(const PagedAttentionParams& p, const AttentionWorkItem& w, const AttentionDestination& dst,
                      AttentionScratch& scratch) {
  AttendItem<ScalarOps>(p, w, dst, scratch);
}

}  // namespace cpu_detail

namespace {

using cpu_detail::AttentionDestination;
using cpu_detail::AttentionScratch;
using cpu_detail::AttentionWorkItem;

// Query rows per work item: enough rows x heads to reuse each page segment
// from L1 many times, few enough that a prefill chunk yields many items.
constexpr int64_t kRowsPerItem = 16;
// A key split covers at least this many keys (rounded up to whole pages).
constexpr int64_t kMinKeysPerSplit = 256;

int64_t ItemCost(const PagedAttentionParams& p, const AttentionWorkItem& w) {
  const int64_t last_pos = p.q_pos0[w.seq] + (w.row_end - 1 - p.q_start[w.seq]);
  const int64_t keys = std::max<int64_t>(0, std::min({w.key_end, last_pos + 1, p.kv_len[w.seq]}) - w.key_begin);
  return (w.row_end - w.row_begin) * keys;
}

}  // namespace

void PagedAttentionCpu(const PagedAttentionParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0);
  const int64_t d = p.head_dim;
  std::vector<AttentionWorkItem> base;
  int64_t max_kv = 0;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    LSERVE_CHECK((p.page_table_start[s + 1] - p.page_table_start[s]) * p.page_size >= p.kv_len[s]);
    max_kv = std::max(max_kv, p.kv_len[s]);
    for (int64_t kvh = 0; kvh < p.n_kv_heads; ++kvh) {
      for (int64_t r0 = p.q_start[s]; r0 < p.q_start[s + 1]; r0 += kRowsPerItem) {
        base.push_back({s, kvh, r0, std::min(r0 + kRowsPerItem, p.q_start[s + 1]), 0, p.kv_len[s], 0});
      }
    }
  }
  if (base.empty()) return;

  // Key splits: only when the items are too few for the threads.
  int64_t n_splits = 1;
  const int64_t threads = pool.size();
  if (threads > 1 && static_cast<int64_t>(base.size()) < 2 * threads && max_kv >= 2 * kMinKeysPerSplit) {
    const int64_t wanted = (4 * threads + static_cast<int64_t>(base.size()) - 1) / static_cast<int64_t>(base.size());
    n_splits = std::clamp<int64_t>(wanted, 1, max_kv / kMinKeysPerSplit);
  }

  std::vector<AttentionWorkItem> items;
  const int64_t rows = p.q_start[p.n_seqs];
  if (n_splits == 1) {
    items = base;
  } else {
    for (const AttentionWorkItem& w : base) {
      const int64_t kv = p.kv_len[w.seq];
      const int64_t pages = (kv + p.page_size - 1) / p.page_size;
      const int64_t pages_per_split = (pages + n_splits - 1) / n_splits;
      for (int64_t sp = 0; sp < n_splits; ++sp) {
        AttentionWorkItem part = w;
        part.key_begin = std::min(kv, sp * pages_per_split * p.page_size);
        part.key_end = std::min(kv, (sp + 1) * pages_per_split * p.page_size);
        part.split = sp;
        items.push_back(part);  // possibly empty: it then writes the empty state
      }
    }
  }
  std::stable_sort(items.begin(), items.end(), [&](const AttentionWorkItem& a, const AttentionWorkItem& b) {
    return ItemCost(p, a) > ItemCost(p, b);
  });

  // Partial states of the splits: [n_splits, rows, n_q_heads, head_dim] and [n_splits, rows, n_q_heads].
  std::vector<float> part_o, part_lse;
  if (n_splits > 1) {
    part_o.resize(static_cast<size_t>(n_splits * rows * p.n_q_heads * d));
    part_lse.resize(static_cast<size_t>(n_splits * rows * p.n_q_heads));
  }

  const bool simd = cpu_detail::CpuHasAvx2Fma();
  std::atomic<int64_t> next{0};
  const int64_t n_items = static_cast<int64_t>(items.size());
  pool.ParallelFor(std::min<int64_t>(threads, n_items), [&](int64_t, int64_t) {
    thread_local AttentionScratch scratch;
    for (int64_t i = next.fetch_add(1); i < n_items; i = next.fetch_add(1)) {
      const AttentionWorkItem& w = items[i];
      AttentionDestination dst;
      if (n_splits == 1) {
        dst = {p.out, p.n_q_heads * d, p.lse, p.n_q_heads, 0};
      } else {
        dst = {part_o.data() + w.split * rows * p.n_q_heads * d, p.n_q_heads * d,
               part_lse.data() + w.split * rows * p.n_q_heads, p.n_q_heads, 0};
      }
      if (simd) {
        cpu_detail::AttendItemAvx2(p, w, dst, scratch);
      } else {
        cpu_detail::AttendItemScalar(p, w, dst, scratch);
      }
    }
  });
  if (n_splits == 1) return;

  MergeSplitPartials(part_o.data(), part_lse.data(), n_splits, rows * p.n_q_heads, d, p.out, p.lse, pool);
}

}  // namespace lserve
