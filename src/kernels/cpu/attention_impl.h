// Internal to kernels/cpu: the body of the CPU attention kernel, shared by
// SparseAttentionCpu and PagedAttentionCpu (dense causal attention is the
// sparse kernel with every head a retrieval head and no selection). Written
// once over an `Ops` policy of vector primitives (ScalarAttentionOps in
// attention.cc, Avx2AttentionOps in attention_ops_avx2.h; this header is
// included by attention_avx2.cc under the AVX2 target so the template code is
// compiled for it) and a head-mode policy (RetrievalKeys / StreamingKeys:
// which pool a page lives in and which keys of it a row sees).
//
// Plan. A work item is (sequence, KV head, block of query rows) with the
// ascending list of key pages that some row of the block needs (all causal
// pages, the selection, or the sink pages + the local band); pages outside
// the list are never touched. The list is cut into parts: a page goes to part
// PartKeyOf(page) / PagesPerPart(P), where the part key is the page number
// (dense causal, streaming) or the page's index in the selection, so the cut
// points depend on the sequence and head only, never on the block's rows,
// the batch or the threads.
//
// Arithmetic of one part. The part's pages are walked in order in
// flash-attention order (each page used by every row x query head of the item
// while in L1), with an online softmax per (row, query head):
//   m = running max score, l = sum exp(score - m), acc = sum exp(score - m) v;
// each row takes from a page only the pieces of its own key set (so the Λ mask
// stays token-exact). The part ends as out = acc / l, lse = m + log l, or the
// empty state (out = 0, lse = -inf) for a row without keys in it. A row's
// result is its parts' states merged in part order with MergePartialState.
//
// Batch invariance. A row's bits depend only on its own query, position and
// key set: the pieces it reads, the part cut points and the merge order are
// functions of those, and the Ops give the same bits for a piece whoever else
// shares the item (attention_ops_avx2.h). Whether an item's parts run in one
// task (merged as they finish) or as separate tasks (partial states merged
// afterwards) is a scheduling choice with the same arithmetic, so it may
// depend on the batch and the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "kernels/ref/sparse_attention.h"

namespace lserve::cpu_detail {

// Query rows per work item: enough rows x heads to reuse each page from L1
// many times, few enough that a prefill chunk yields many items.
inline constexpr int64_t kRowsPerItem = 16;

// Keys per part (rounded down to whole pages, at least one page): small
// enough that one long decode row gives work to every thread, large enough
// that the merges cost little (one per part and state).
inline constexpr int64_t kKeysPerPart = 1024;
inline int64_t PagesPerPart(int64_t page_size) { return std::max<int64_t>(1, kKeysPerPart / page_size); }

struct AttentionItem {
  int64_t seq, kv_head;
  int64_t row_begin, row_end;    // query rows (global row indices)
  int64_t part_begin, part_end;  // the item's parts in AttentionPlan::parts; none when no row sees a page
};

// Pages [begin, end) of AttentionPlan::pages.
struct PageRange {
  int64_t begin, end;
};

struct AttentionPlan {
  std::vector<AttentionItem> items;
  std::vector<PageRange> parts;
  std::vector<int64_t> pages;  // logical page numbers (indices into the sequence's table), item after item
};

// A task runs parts [part_begin, part_end) of one item, in order. It writes
// the item's final output (its parts merged) when it runs all of them, or else
// (one part) the part's state into a partial-state slot.
struct AttentionTask {
  int64_t item;
  int64_t part_begin, part_end;
  int64_t partial;  // first state of the slot in the partial buffers, or -1 for the final output
};

// Where a task writes its states: state (r, g) (item row r, query head g of
// the KV head's group) has o at o + (r * row_stride + g) * head_dim and lse at
// lse[r * row_stride + g] (lse nullable).
struct StateOutput {
  float* o;
  float* lse;
  int64_t row_stride;
};

struct AttentionScratch {
  std::vector<float> acc, m, l, scores, factor;  // the online-softmax states of the part being computed
  std::vector<float> run_o, run_lse;             // the merged states of the parts done
  std::vector<float> part_o, part_lse;           // the state of the part just done
};

// Merges the state (o_b, lse_b) into (o, *lse) (merge.h's rules). One
// out-of-line definition (sparse_attention.cc) serves the in-task merges and
// the merge of partial states, so both give the same bits.
void MergePartialState(float* o, float* lse, const float* o_b, float lse_b, int64_t head_dim);

// A row's visible keys as up to two ascending ranges [begin, end).
struct KeyRanges {
  int64_t begin[2], end[2];
};

// Retrieval heads: keys [0, min(pos + 1, kv_len)) of the listed pages (the
// selection already limits the list), from the retrieval pool.
struct RetrievalKeys {
  static constexpr int kRanges = 1;
  static KeyRanges Of(const SparseAttentionParams& p, int64_t s, int64_t pos) {
    return {{0, 0}, {std::max<int64_t>(0, std::min(pos + 1, p.kv_len[s])), 0}};
  }
  static int64_t PageElementOffset(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t b) {
    const int64_t page = p.page_table_r[p.page_table_start_r[s] + b];
    return (page * p.n_retrieval_heads + p.pool_slot[kv_head]) * p.page_size * p.head_dim;
  }
  static const float* KeyCache(const SparseAttentionParams& p) { return p.k_cache_r; }
  static const float* ValueCache(const SparseAttentionParams& p) { return p.v_cache_r; }
};

// Streaming heads: the sink and the local band (Λ), from the ring of the
// streaming pool.
struct StreamingKeys {
  static constexpr int kRanges = 2;
  static KeyRanges Of(const SparseAttentionParams& p, int64_t s, int64_t pos) {
    const StreamingKeyRanges r = StreamingRangesOf(pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s));
    return {{0, r.local_begin}, {r.sink_end, r.visible_end}};
  }
  static int64_t PageElementOffset(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t b) {
    const int64_t slot = RingSlotOf(b, p.stream_sink_pages, RingPagesOf(p, s));
    const int64_t page = p.page_table_s[p.page_table_start_s[s] + slot];
    return (page * p.n_streaming_heads + p.pool_slot[kv_head]) * p.page_size * p.head_dim;
  }
  static const float* KeyCache(const SparseAttentionParams& p) { return p.k_cache_s; }
  static const float* ValueCache(const SparseAttentionParams& p) { return p.v_cache_s; }
};

// One part of item w: the online-softmax states of its rows x heads over
// pages[0, n_pages), left in scratch.acc / m / l. Kept out of line so that
// every way of running a part executes the same machine code (the compiler
// may fuse a multiply and an add differently in two inlined copies).
template <class Ops, class Keys>
__attribute__((noinline)) void AttendPart(const SparseAttentionParams& p, const AttentionItem& w, const int64_t* pages, int64_t n_pages,
                const KeyRanges* row_keys, AttentionScratch& scratch) {
  const int64_t d = p.head_dim;
  const int64_t ps = p.page_size;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t rows = w.row_end - w.row_begin;
  const int64_t states = rows * group;
  const int64_t kv_len = p.kv_len[w.seq];
  std::fill_n(scratch.acc.data(), states * d, 0.0f);
  std::fill_n(scratch.m.data(), states, -INFINITY);
  std::fill_n(scratch.l.data(), states, 0.0f);
  float* scores = scratch.scores.data();  // [group, ps]
  float* factor = scratch.factor.data();  // [group]
  const float* k_cache = Keys::KeyCache(p);
  const float* v_cache = Keys::ValueCache(p);

  for (int64_t i = 0; i < n_pages; ++i) {
    const int64_t b = pages[i];
    const int64_t page_offset = Keys::PageElementOffset(p, w.seq, w.kv_head, b);
    const int64_t seg_begin = b * ps;
    const int64_t seg_end = std::min((b + 1) * ps, kv_len);
    for (int64_t r = 0; r < rows; ++r) {
      const float* q = p.q + ((w.row_begin + r) * p.n_q_heads + w.kv_head * group) * d;  // [group, d]
      float* acc = scratch.acc.data() + r * group * d;                                     // [group, d]
      float* m = scratch.m.data() + r * group;
      float* l = scratch.l.data() + r * group;
      for (int x = 0; x < Keys::kRanges; ++x) {
        const int64_t j0 = std::max(seg_begin, row_keys[r].begin[x]);
        const int64_t n = std::min(seg_end, row_keys[r].end[x]) - j0;
        if (n <= 0) continue;
        const int64_t at = page_offset + (j0 - seg_begin) * d;
        Ops::Scores(q, group, k_cache + at, n, d, p.scale, scores, ps);
        for (int64_t g = 0; g < group; ++g) {
          float* s = scores + g * ps;
          const float m_new = std::max(m[g], Ops::Max(s, n));
          factor[g] = m_new > m[g] && l[g] > 0.0f ? std::exp(m[g] - m_new) : 1.0f;
          l[g] *= factor[g];
          m[g] = m_new;
          l[g] += Ops::ExpSubSum(s, n, m_new);
        }
        Ops::AccumulatePV(acc, factor, scores, ps, group, v_cache + at, n, d);
      }
    }
  }
}

// Writes the part states left in scratch (out = acc / l, lse = m + log l, or
// the empty state) to `out`.
inline void FinishPart(const AttentionScratch& scratch, int64_t states, int64_t group, int64_t d,
                       const StateOutput& out) {
  for (int64_t st = 0; st < states; ++st) {
    const int64_t r = st / group, g = st % group;
    float* o = out.o + (r * out.row_stride + g) * d;
    const float l = scratch.l[st];
    if (l > 0.0f) {
      const float* acc = scratch.acc.data() + st * d;
      const float inv = 1.0f / l;
      for (int64_t c = 0; c < d; ++c) o[c] = acc[c] * inv;
    } else {
      for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
    }
    if (out.lse != nullptr) out.lse[r * out.row_stride + g] = l > 0.0f ? scratch.m[st] + std::log(l) : -INFINITY;
  }
}

// Task t of the plan with the key policy of its head's mode.
template <class Ops, class Keys>
void RunTaskWithKeys(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                     const StateOutput& out, AttentionScratch& scratch) {
  const AttentionItem& w = plan.items[t.item];
  const int64_t d = p.head_dim;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t rows = w.row_end - w.row_begin;
  const int64_t states = rows * group;
  scratch.acc.resize(static_cast<size_t>(states * d));
  scratch.m.resize(static_cast<size_t>(states));
  scratch.l.resize(static_cast<size_t>(states));
  scratch.scores.resize(static_cast<size_t>(group * p.page_size));
  scratch.factor.resize(static_cast<size_t>(group));
  LSERVE_CHECK(rows <= kRowsPerItem);
  KeyRanges row_keys[kRowsPerItem];
  for (int64_t r = 0; r < rows; ++r) {
    row_keys[r] = Keys::Of(p, w.seq, p.q_pos0[w.seq] + (w.row_begin + r - p.q_start[w.seq]));
  }
  auto run_part = [&](int64_t part) {
    const PageRange range = plan.parts[static_cast<size_t>(part)];
    AttendPart<Ops, Keys>(p, w, plan.pages.data() + range.begin, range.end - range.begin, row_keys, scratch);
  };
  const int64_t n_parts = t.part_end - t.part_begin;
  if (n_parts <= 1) {
    // One part (or an item without pages: the empty state).
    if (n_parts == 1) {
      run_part(t.part_begin);
    } else {
      AttendPart<Ops, Keys>(p, w, nullptr, 0, row_keys, scratch);
    }
    FinishPart(scratch, states, group, d, out);
    return;
  }
  // Several parts in this task: merge each into the running states as it ends.
  scratch.run_o.resize(static_cast<size_t>(states * d));
  scratch.run_lse.resize(static_cast<size_t>(states));
  scratch.part_o.resize(static_cast<size_t>(states * d));
  scratch.part_lse.resize(static_cast<size_t>(states));
  for (int64_t part = t.part_begin; part < t.part_end; ++part) {
    run_part(part);
    if (part == t.part_begin) {
      FinishPart(scratch, states, group, d, {scratch.run_o.data(), scratch.run_lse.data(), group});
      continue;
    }
    FinishPart(scratch, states, group, d, {scratch.part_o.data(), scratch.part_lse.data(), group});
    for (int64_t st = 0; st < states; ++st) {
      MergePartialState(scratch.run_o.data() + st * d, &scratch.run_lse[st], scratch.part_o.data() + st * d,
                        scratch.part_lse[st], d);
    }
  }
  for (int64_t st = 0; st < states; ++st) {
    const int64_t r = st / group, g = st % group;
    std::copy_n(scratch.run_o.data() + st * d, d, out.o + (r * out.row_stride + g) * d);
    if (out.lse != nullptr) out.lse[r * out.row_stride + g] = scratch.run_lse[st];
  }
}

// Runs task t (dispatching on the item's head mode) into `out`.
template <class Ops>
void RunAttentionTask(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                      const StateOutput& out, AttentionScratch& scratch) {
  if (p.head_mode[plan.items[t.item].kv_head] == kHeadModeStreaming) {
    RunTaskWithKeys<Ops, StreamingKeys>(p, plan, t, out, scratch);
  } else {
    RunTaskWithKeys<Ops, RetrievalKeys>(p, plan, t, out, scratch);
  }
}

// The two instantiations.
void RunAttentionTaskScalar(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                            const StateOutput& out, AttentionScratch& scratch);
void RunAttentionTaskAvx2(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                          const StateOutput& out, AttentionScratch& scratch);

}  // namespace lserve::cpu_detail
