// Sparse attention on the CPU: the plan (work items, their page lists cut into
// parts, tasks) and the run over the pool; the item arithmetic is in
// attention_impl.h, which also states why a row's bits do not depend on the
// batch or the thread count.
//
// Tasks. Each item runs as one task that merges its parts as they end, unless
// the items are too few for the threads (decode of one or two long
// sequences): then every part of a multi-part item is a task of its own,
// writing a partial state, and the partial states are merged afterwards in
// part order. Both give the same bits; only the parallelism differs.
#include "kernels/cpu/sparse_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/merge.h"

namespace lserve {
namespace cpu_detail {

void MergePartialState(float* o, float* lse, const float* o_b, float lse_b, int64_t head_dim) {
  MergeStateInPlace(o, lse, o_b, lse_b, head_dim);
}

}  // namespace cpu_detail

namespace {

using cpu_detail::AttentionItem;
using cpu_detail::AttentionPlan;
using cpu_detail::AttentionScratch;
using cpu_detail::AttentionTask;
using cpu_detail::StateOutput;

// Appends the ascending key pages that rows [row_begin, row_end) of (s,
// kv_head) need, each with its part key (attention_impl.h): the page number,
// or the page's index in the selection.
void AppendItemPages(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t row_begin, int64_t row_end,
                     std::vector<int64_t>& pages, std::vector<int64_t>& part_keys) {
  const int64_t ps = p.page_size;
  const int64_t first_pos = p.q_pos0[s] + (row_begin - p.q_start[s]);
  const int64_t last_pos = p.q_pos0[s] + (row_end - 1 - p.q_start[s]);
  const int64_t last_visible = std::max<int64_t>(0, std::min(last_pos + 1, p.kv_len[s]));
  auto add = [&](int64_t b, int64_t key) {
    pages.push_back(b);
    part_keys.push_back(key);
  };
  if (p.head_mode[kv_head] == kHeadModeStreaming) {
    // Sink pages, then the pages of the union of the rows' local bands (both
    // ends of a row's band grow with its position), each page once.
    const int64_t sink_end = std::min(SinkOf(p, s), last_visible);
    const int64_t sink_pages = (sink_end + ps - 1) / ps;
    for (int64_t b = 0; b < sink_pages; ++b) add(b, b);
    const int64_t band_begin = StreamingRangesOf(first_pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s)).local_begin;
    if (band_begin < last_visible) {
      for (int64_t b = std::max(sink_pages, band_begin / ps); b * ps < last_visible; ++b) add(b, b);
    }
    return;
  }
  const int64_t list = s * p.n_kv_heads + kv_head;
  if (p.selected_pages == nullptr || p.n_selected[list] < 0) {
    for (int64_t b = 0; b * ps < last_visible; ++b) add(b, b);
    return;
  }
  const int32_t* sel = p.selected_pages + list * p.max_selected;
  LSERVE_CHECK(p.n_selected[list] >= 0 && p.n_selected[list] <= p.max_selected);
  for (int64_t i = 0; i < p.n_selected[list]; ++i) {
    LSERVE_CHECK(sel[i] >= 0 && (i == 0 || sel[i] > sel[i - 1]));
    if (sel[i] * ps < last_visible) add(sel[i], i);
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

void AddCounters(const SparseAttentionParams& p) {
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    SparseAttentionCounters seq;
    for (int64_t row = p.q_start[s]; row < p.q_start[s + 1]; ++row) {
      const int64_t pos = p.q_pos0[s] + (row - p.q_start[s]);
      for (int64_t kvh = 0; kvh < p.n_kv_heads; ++kvh) {
        seq.blocks_visited += PagesVisitedByRow(p, s, kvh, pos);
        seq.blocks_dense += PagesSpanned(0, std::min(pos + 1, p.kv_len[s]), p.page_size);
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

// Items of the batch with their page lists cut into parts; checks the
// preconditions on the tables of every page an item reads.
AttentionPlan PlanItems(const SparseAttentionParams& p) {
  const int64_t ps = p.page_size;
  const int64_t pages_per_part = cpu_detail::PagesPerPart(ps);
  AttentionPlan plan;
  std::vector<int64_t> part_keys;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    for (int64_t kvh = 0; kvh < p.n_kv_heads; ++kvh) {
      const bool streaming = p.head_mode[kvh] == kHeadModeStreaming;
      for (int64_t r0 = p.q_start[s]; r0 < p.q_start[s + 1]; r0 += cpu_detail::kRowsPerItem) {
        const int64_t r1 = std::min(r0 + cpu_detail::kRowsPerItem, p.q_start[s + 1]);
        const int64_t begin = static_cast<int64_t>(plan.pages.size());
        AppendItemPages(p, s, kvh, r0, r1, plan.pages, part_keys);
        const int64_t end = static_cast<int64_t>(plan.pages.size());
        const int64_t last_page = (p.kv_len[s] - 1) / ps;
        for (int64_t i = begin; i < end; ++i) {
          const int64_t b = plan.pages[i];
          if (streaming) {
            LSERVE_CHECK(b < p.stream_sink_pages || b > last_page - RingPagesOf(p, s));
            LSERVE_CHECK(p.page_table_start_s[s] + RingSlotOf(b, p.stream_sink_pages, RingPagesOf(p, s)) <
                         p.page_table_start_s[s + 1]);
          } else {
            LSERVE_CHECK(p.page_table_start_r[s] + b < p.page_table_start_r[s + 1]);
          }
        }
        const int64_t part_begin = static_cast<int64_t>(plan.parts.size());
        for (int64_t i = begin; i < end; ++i) {
          if (i == begin || part_keys[i] / pages_per_part != part_keys[i - 1] / pages_per_part) {
            plan.parts.push_back({i, i + 1});
          } else {
            plan.parts.back().end = i + 1;
          }
        }
        plan.items.push_back({s, kvh, r0, r1, part_begin, static_cast<int64_t>(plan.parts.size())});
      }
    }
  }
  return plan;
}

}  // namespace

void SparseAttentionCpu(const SparseAttentionParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0);
  const int64_t d = p.head_dim;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  if (p.counters != nullptr || p.seq_counters != nullptr) AddCounters(p);
  const AttentionPlan plan = PlanItems(p);
  if (plan.items.empty()) return;

  // Tasks: whole items, or single parts when the items are too few for the threads.
  const int64_t threads = pool.size();
  const int64_t n_items = static_cast<int64_t>(plan.items.size());
  const bool split = threads > 1 && n_items < 4 * threads;
  std::vector<AttentionTask> tasks;
  struct SplitItem {
    int64_t item, first_state;  // part k's states start at first_state + k * (the item's states)
  };
  std::vector<SplitItem> split_items;  // items whose parts are separate tasks
  int64_t partial_states = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    const AttentionItem& w = plan.items[i];
    if (!split || w.part_end - w.part_begin <= 1) {
      tasks.push_back({i, w.part_begin, w.part_end, -1});
      continue;
    }
    split_items.push_back({i, partial_states});
    for (int64_t part = w.part_begin; part < w.part_end; ++part) {
      tasks.push_back({i, part, part + 1, partial_states});
      partial_states += (w.row_end - w.row_begin) * group;
    }
  }
  auto cost = [&](const AttentionTask& t) {
    const AttentionItem& w = plan.items[t.item];
    const int64_t pages = t.part_end > t.part_begin
                              ? plan.parts[t.part_end - 1].end - plan.parts[t.part_begin].begin
                              : 0;
    return (w.row_end - w.row_begin) * pages;
  };
  std::stable_sort(tasks.begin(), tasks.end(),
                   [&](const AttentionTask& a, const AttentionTask& b) { return cost(a) > cost(b); });

  // Partial states of the split items' parts: o [states, d], lse [states].
  std::vector<float> part_o(static_cast<size_t>(partial_states * d)), part_lse(static_cast<size_t>(partial_states));
  const bool simd = cpu_detail::CpuHasAvx2Fma();
  std::atomic<int64_t> next{0};
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  pool.ParallelFor(std::min<int64_t>(threads, n_tasks), [&](int64_t, int64_t) {
    thread_local AttentionScratch scratch;
    for (int64_t i = next.fetch_add(1); i < n_tasks; i = next.fetch_add(1)) {
      const AttentionTask& t = tasks[i];
      const AttentionItem& w = plan.items[t.item];
      StateOutput out;
      if (t.partial < 0) {
        const int64_t first = w.row_begin * p.n_q_heads + w.kv_head * group;
        out = {p.out + first * d, p.lse != nullptr ? p.lse + first : nullptr, p.n_q_heads};
      } else {
        out = {part_o.data() + t.partial * d, part_lse.data() + t.partial, group};
      }
      if (simd) {
        cpu_detail::RunAttentionTaskAvx2(p, plan, t, out, scratch);
      } else {
        cpu_detail::RunAttentionTaskScalar(p, plan, t, out, scratch);
      }
    }
  });
  if (split_items.empty()) return;

  // Merge the split items' partial states in part order.
  pool.ParallelFor(static_cast<int64_t>(split_items.size()), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const AttentionItem& w = plan.items[split_items[i].item];
      const int64_t states = (w.row_end - w.row_begin) * group;
      for (int64_t st = 0; st < states; ++st) {
        const int64_t r = st / group, g = st % group;
        const int64_t at = (w.row_begin + r) * p.n_q_heads + w.kv_head * group + g;
        float* o = p.out + at * d;
        const int64_t slot0 = split_items[i].first_state + st;
        float lse = part_lse[slot0];
        std::copy_n(part_o.data() + slot0 * d, d, o);
        for (int64_t part = 1; part < w.part_end - w.part_begin; ++part) {
          const int64_t slot = slot0 + part * states;
          cpu_detail::MergePartialState(o, &lse, part_o.data() + slot * d, part_lse[slot], d);
        }
        if (p.lse != nullptr) p.lse[at] = lse;
      }
    }
  });
}

}  // namespace lserve
