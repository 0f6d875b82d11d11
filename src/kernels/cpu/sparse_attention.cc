// Sparse attention on the CPU. Work items are (sequence, KV head, block of
// query rows) with the ascending list of key pages that some row of the block
// needs (all causal pages, the selection, or the sink pages + the local band);
// pages outside the list are never touched. An item walks its pages in
// flash-attention order (each page segment used by every row x query head of
// the item while in L1) with an online softmax per (row, query head); each row
// takes from a segment only the keys of its own set, so the Λ mask stays
// token-exact. When the items are too few for the threads (decode), each
// item's page list is split into parts whose partial states are combined with
// the log-sum-exp merge (merge.h).
#include "kernels/cpu/sparse_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/merge.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/merge.h"

namespace lserve {
namespace {

// Query rows per work item (as the dense kernel).
constexpr int64_t kRowsPerItem = 16;
// A key split covers at least this many pages' worth of keys.
constexpr int64_t kMinKeysPerSplit = 256;

struct ScalarOps {
  static float Dot(const float* a, const float* b, int64_t d) {
    float dot = 0.0f;
    for (int64_t c = 0; c < d; ++c) dot += a[c] * b[c];
    return dot;
  }
  static void Axpy(float a, const float* v, float* out, int64_t d) {
    for (int64_t c = 0; c < d; ++c) out[c] += a * v[c];
  }
};

struct Avx2Ops {
  static float Dot(const float* a, const float* b, int64_t d) { return cpu_detail::DotAvx2(a, b, d); }
  static void Axpy(float a, const float* v, float* out, int64_t d) { cpu_detail::AxpyAvx2(a, v, out, d); }
};

struct Item {
  int64_t seq, kv_head, row_begin, row_end;
  int64_t page_begin, page_end;  // range of `pages` (the item's list, or one split of it)
  int64_t split;
};

struct Scratch {
  std::vector<float> acc, m, l, scores;
};

struct Destination {
  float* o;    // [rows, n_q_heads, head_dim]
  float* lse;  // [rows, n_q_heads], nullable
};

// Visible key ranges of a row: [a0, a1) and [b0, b1) (the second empty for
// retrieval heads, whose page list already holds only selected pages).
struct RowRanges {
  int64_t a0, a1, b0, b1;
};

RowRanges RangesOfRow(const SparseAttentionParams& p, int64_t s, bool streaming, int64_t pos) {
  if (streaming) {
    const StreamingKeyRanges r = StreamingRangesOf(pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s));
    return {0, r.sink_end, r.local_begin, r.visible_end};
  }
  return {0, std::max<int64_t>(0, std::min(pos + 1, p.kv_len[s])), 0, 0};
}

const float* PageBase(const SparseAttentionParams& p, int64_t s, int64_t kv_head, bool streaming, int64_t b,
                      bool values) {
  const int64_t slot = p.pool_slot[kv_head];
  const int64_t page_elems = p.page_size * p.head_dim;
  if (!streaming) {
    const int64_t page = p.page_table_r[p.page_table_start_r[s] + b];
    return (values ? p.v_cache_r : p.k_cache_r) + (page * p.n_retrieval_heads + slot) * page_elems;
  }
  const int64_t page = p.page_table_s[p.page_table_start_s[s] + RingSlotOf(b, p.stream_sink_pages, RingPagesOf(p, s))];
  return (values ? p.v_cache_s : p.k_cache_s) + (page * p.n_streaming_heads + slot) * page_elems;
}

template <class Ops>
void AttendItem(const SparseAttentionParams& p, const Item& w, const std::vector<int64_t>& pages,
                const Destination& dst, Scratch& scratch) {
  const int64_t d = p.head_dim;
  const int64_t ps = p.page_size;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t rows = w.row_end - w.row_begin;
  const int64_t states = rows * group;
  scratch.acc.assign(static_cast<size_t>(states * d), 0.0f);
  scratch.m.assign(static_cast<size_t>(states), -INFINITY);
  scratch.l.assign(static_cast<size_t>(states), 0.0f);
  scratch.scores.resize(static_cast<size_t>(ps));
  float* scores = scratch.scores.data();
  const int64_t s = w.seq;
  const bool streaming = p.head_mode[w.kv_head] == kHeadModeStreaming;
  const int64_t seq_row0 = p.q_start[s];
  const int64_t pos0 = p.q_pos0[s];
  const int64_t kv_len = p.kv_len[s];

  for (int64_t pi = w.page_begin; pi < w.page_end; ++pi) {
    const int64_t b = pages[pi];
    const float* k_page = PageBase(p, s, w.kv_head, streaming, b, false);
    const float* v_page = PageBase(p, s, w.kv_head, streaming, b, true);
    const int64_t seg_begin = b * ps;
    const int64_t seg_end = std::min((b + 1) * ps, kv_len);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = w.row_begin + r;
      const RowRanges rr = RangesOfRow(p, s, streaming, pos0 + (row - seq_row0));
      // At most two pieces of the page (a page straddling the sink end and the local band).
      const int64_t piece[2][2] = {{std::max(seg_begin, rr.a0), std::min(seg_end, rr.a1)},
                                   {std::max(seg_begin, rr.b0), std::min(seg_end, rr.b1)}};
      for (const auto& pc : piece) {
        const int64_t j0 = pc[0], n = pc[1] - pc[0];
        if (n <= 0) continue;
        const float* k = k_page + (j0 - seg_begin) * d;
        const float* v = v_page + (j0 - seg_begin) * d;
        for (int64_t g = 0; g < group; ++g) {
          const int64_t h = w.kv_head * group + g;
          const int64_t st = r * group + g;
          const float* q = p.q + (row * p.n_q_heads + h) * d;
          float* acc = scratch.acc.data() + st * d;
          float block_max = -INFINITY;
          for (int64_t j = 0; j < n; ++j) {
            scores[j] = Ops::Dot(q, k + j * d, d) * p.scale;
            block_max = std::max(block_max, scores[j]);
          }
          const float m_old = scratch.m[st];
          const float m_new = std::max(m_old, block_max);
          if (m_new > m_old && scratch.l[st] > 0.0f) {
            const float factor = std::exp(m_old - m_new);
            scratch.l[st] *= factor;
            for (int64_t c = 0; c < d; ++c) acc[c] *= factor;
          }
          scratch.m[st] = m_new;
          float sum = 0.0f;
          for (int64_t j = 0; j < n; ++j) {
            const float e = std::exp(scores[j] - m_new);
            sum += e;
            Ops::Axpy(e, v + j * d, acc, d);
          }
          scratch.l[st] += sum;
        }
      }
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = w.row_begin + r;
    for (int64_t g = 0; g < group; ++g) {
      const int64_t h = w.kv_head * group + g;
      const int64_t st = r * group + g;
      float* o = dst.o + (row * p.n_q_heads + h) * d;
      const float l = scratch.l[st];
      if (l > 0.0f) {
        const float* acc = scratch.acc.data() + st * d;
        const float inv = 1.0f / l;
        for (int64_t c = 0; c < d; ++c) o[c] = acc[c] * inv;
      } else {
        for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
      }
      if (dst.lse != nullptr) dst.lse[row * p.n_q_heads + h] = l > 0.0f ? scratch.m[st] + std::log(l) : -INFINITY;
    }
  }
}

// Appends the ascending key pages that rows [row_begin, row_end) of (s, kv_head) need.
void AppendItemPages(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t row_begin, int64_t row_end,
                     std::vector<int64_t>& pages) {
  const int64_t ps = p.page_size;
  const int64_t first_pos = p.q_pos0[s] + (row_begin - p.q_start[s]);
  const int64_t last_pos = p.q_pos0[s] + (row_end - 1 - p.q_start[s]);
  const int64_t last_visible = std::max<int64_t>(0, std::min(last_pos + 1, p.kv_len[s]));
  if (p.head_mode[kv_head] == kHeadModeStreaming) {
    // Sink pages, then the pages of the union of the rows' local bands (both
    // ends of a row's band grow with its position), each page once.
    const int64_t sink_end = std::min(SinkOf(p, s), last_visible);
    const int64_t sink_pages = (sink_end + ps - 1) / ps;
    for (int64_t b = 0; b < sink_pages; ++b) pages.push_back(b);
    const int64_t band_begin = StreamingRangesOf(first_pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s)).local_begin;
    if (band_begin < last_visible) {
      for (int64_t b = std::max(sink_pages, band_begin / ps); b * ps < last_visible; ++b) pages.push_back(b);
    }
    return;
  }
  const int64_t list = s * p.n_kv_heads + kv_head;
  if (p.selected_pages == nullptr || p.n_selected[list] < 0) {
    for (int64_t b = 0; b * ps < last_visible; ++b) pages.push_back(b);
    return;
  }
  const int32_t* sel = p.selected_pages + list * p.max_selected;
  LSERVE_CHECK(p.n_selected[list] >= 0 && p.n_selected[list] <= p.max_selected);
  for (int64_t i = 0; i < p.n_selected[list]; ++i) {
    LSERVE_CHECK(sel[i] >= 0 && (i == 0 || sel[i] > sel[i - 1]));
    if (sel[i] * ps < last_visible) pages.push_back(sel[i]);
  }
}

// Pages holding keys of the set of (row at pos, KV head): the counters' unit.
int64_t PagesVisitedByRow(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t pos) {
  const int64_t visible = std::max<int64_t>(0, std::min(pos + 1, p.kv_len[s]));
  if (p.head_mode[kv_head] == kHeadModeStreaming) {
    return StreamingPagesVisited(StreamingRangesOf(pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s)), p.page_size);
  }
  const int64_t list = s * p.n_kv_heads + kv_head;
  if (p.selected_pages == nullptr || p.n_selected[list] < 0) return PagesSpanned(0, visible, p.page_size);
  int64_t n = 0;
  for (int64_t i = 0; i < p.n_selected[list]; ++i) n += p.selected_pages[list * p.max_selected + i] * p.page_size < visible;
  return n;
}

}  // namespace

void SparseAttentionCpu(const SparseAttentionParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0);
  const int64_t d = p.head_dim;
  const int64_t ps = p.page_size;
  std::vector<Item> base;
  std::vector<int64_t> pages;
  int64_t max_item_pages = 0;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    for (int64_t kvh = 0; kvh < p.n_kv_heads; ++kvh) {
      const bool streaming = p.head_mode[kvh] == kHeadModeStreaming;
      for (int64_t r0 = p.q_start[s]; r0 < p.q_start[s + 1]; r0 += kRowsPerItem) {
        const int64_t r1 = std::min(r0 + kRowsPerItem, p.q_start[s + 1]);
        const int64_t begin = static_cast<int64_t>(pages.size());
        AppendItemPages(p, s, kvh, r0, r1, pages);
        const int64_t end = static_cast<int64_t>(pages.size());
        // Preconditions on the tables of every page the item reads.
        const int64_t last_page = (p.kv_len[s] - 1) / ps;
        for (int64_t i = begin; i < end; ++i) {
          if (streaming) {
            LSERVE_CHECK(pages[i] < p.stream_sink_pages || pages[i] > last_page - RingPagesOf(p, s));
            LSERVE_CHECK(p.page_table_start_s[s] + RingSlotOf(pages[i], p.stream_sink_pages, RingPagesOf(p, s)) <
                         p.page_table_start_s[s + 1]);
          } else {
            LSERVE_CHECK(p.page_table_start_r[s] + pages[i] < p.page_table_start_r[s + 1]);
          }
        }
        max_item_pages = std::max(max_item_pages, end - begin);
        base.push_back({s, kvh, r0, r1, begin, end, 0});
      }
    }
  }
  if (p.counters != nullptr || p.seq_counters != nullptr) {
    for (int64_t s = 0; s < p.n_seqs; ++s) {
      SparseAttentionCounters seq;
      for (int64_t row = p.q_start[s]; row < p.q_start[s + 1]; ++row) {
        const int64_t pos = p.q_pos0[s] + (row - p.q_start[s]);
        for (int64_t kvh = 0; kvh < p.n_kv_heads; ++kvh) {
          seq.blocks_visited += PagesVisitedByRow(p, s, kvh, pos);
          seq.blocks_dense += PagesSpanned(0, std::min(pos + 1, p.kv_len[s]), ps);
        }
      }
      if (p.counters != nullptr) {
        p.counters->blocks_visited += seq.blocks_visited;
        p.counters->blocks_dense += seq.blocks_dense;
      }
      if (p.seq_counters != nullptr) {
        p.seq_counters[s].blocks_visited += seq.blocks_visited;
        p.seq_counters[s].blocks_dense += seq.blocks_dense;
      }
    }
  }

  if (base.empty()) return;

  // Splits of the page lists: only when the items are too few for the threads.
  int64_t n_splits = 1;
  const int64_t threads = pool.size();
  const int64_t min_pages_per_split = std::max<int64_t>(1, kMinKeysPerSplit / ps);
  if (threads > 1 && static_cast<int64_t>(base.size()) < 2 * threads &&
      max_item_pages >= 2 * min_pages_per_split) {
    const int64_t wanted = (4 * threads + static_cast<int64_t>(base.size()) - 1) / static_cast<int64_t>(base.size());
    n_splits = std::clamp<int64_t>(wanted, 1, max_item_pages / min_pages_per_split);
  }
  std::vector<Item> items;
  if (n_splits == 1) {
    items = base;
  } else {
    for (const Item& w : base) {
      const int64_t n = w.page_end - w.page_begin;
      const int64_t per_split = (n + n_splits - 1) / n_splits;
      for (int64_t sp = 0; sp < n_splits; ++sp) {
        Item part = w;
        part.page_begin = std::min(w.page_end, w.page_begin + sp * per_split);
        part.page_end = std::min(w.page_end, w.page_begin + (sp + 1) * per_split);
        part.split = sp;
        items.push_back(part);  // possibly empty: it then writes the empty state
      }
    }
  }
  auto cost = [&](const Item& w) { return (w.row_end - w.row_begin) * (w.page_end - w.page_begin); };
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) { return cost(a) > cost(b); });

  const int64_t rows = p.q_start[p.n_seqs];
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
    thread_local Scratch scratch;
    for (int64_t i = next.fetch_add(1); i < n_items; i = next.fetch_add(1)) {
      const Item& w = items[i];
      const Destination dst = n_splits == 1 ? Destination{p.out, p.lse}
                                            : Destination{part_o.data() + w.split * rows * p.n_q_heads * d,
                                                          part_lse.data() + w.split * rows * p.n_q_heads};
      if (simd) {
        AttendItem<Avx2Ops>(p, w, pages, dst, scratch);
      } else {
        AttendItem<ScalarOps>(p, w, pages, dst, scratch);
      }
    }
  });
  if (n_splits == 1) return;

  MergeSplitPartials(part_o.data(), part_lse.data(), n_splits, rows * p.n_q_heads, d, p.out, p.lse, pool);
}

}  // namespace lserve
