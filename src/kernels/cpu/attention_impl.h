// Internal to kernels/cpu: the body of the paged attention kernel, written
// once over an `Ops` policy of vector primitives (scalar in attention.cc,
// AVX2 in attention_avx2.cc, where this header is included under the AVX2
// target so the template code is compiled for it).
//
// A work item is (sequence, kv head, block of query rows, range of keys). It
// visits the keys one page segment at a time (flash-attention order: every
// row x head of the item uses the segment while it is in L1) and keeps an
// online-softmax state per (row, query head of the kv head's group):
//   m = running max score, l = sum exp(score - m), acc = sum exp(score - m) v.
// At the end out = acc / l and lse = m + log l, or the empty state
// (out = 0, lse = -inf) when the item saw no key for that row.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/ref/attention.h"

namespace lserve::cpu_detail {

struct AttentionWorkItem {
  int64_t seq;
  int64_t kv_head;
  int64_t row_begin, row_end;  // query rows (global row indices)
  int64_t key_begin, key_end;  // key positions considered (before the causal limit)
  int64_t split;               // index of the key split (0 when not split)
};

// Where an item writes its (row, head) results: o at o_base + row_local *
// o_row_stride + h * head_dim (h = query head), lse at lse_base + row_local *
// lse_row_stride + h (lse_base nullable). row_local = row - row_offset.
struct AttentionDestination {
  float* o_base;
  int64_t o_row_stride;
  float* lse_base;
  int64_t lse_row_stride;
  int64_t row_offset;
};

struct AttentionScratch {
  std::vector<float> acc, m, l, scores;
};

template <class Ops>
void AttendItem(const PagedAttentionParams& p, const AttentionWorkItem& w, const AttentionDestination& dst,
                AttentionScratch& scratch) {
  const int64_t d = p.head_dim;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t rows = w.row_end - w.row_begin;
  const int64_t states = rows * group;
  scratch.acc.assign(static_cast<size_t>(states * d), 0.0f);
  scratch.m.assign(static_cast<size_t>(states), -INFINITY);
  scratch.l.assign(static_cast<size_t>(states), 0.0f);
  scratch.scores.resize(static_cast<size_t>(p.page_size));
  float* scores = scratch.scores.data();

  const int64_t seq_row0 = p.q_start[w.seq];
  const int64_t pos0 = p.q_pos0[w.seq];
  const int64_t kv_len = p.kv_len[w.seq];
  const int32_t* pages = p.page_table + p.page_table_start[w.seq];
  // Keys visible to the last row bound the item's key range.
  const int64_t last_visible = std::min(pos0 + (w.row_end - 1 - seq_row0) + 1, kv_len);
  const int64_t key_end = std::min(w.key_end, last_visible);

  for (int64_t j0 = w.key_begin; j0 < key_end;) {
    const int64_t page_index = j0 / p.page_size;
    const int64_t offset = j0 % p.page_size;
    const int64_t j1 = std::min(key_end, (page_index + 1) * p.page_size);
    const int64_t page = pages[page_index];
    const int64_t base = ((page * p.n_kv_heads + w.kv_head) * p.page_size + offset) * d;
    const float* k = p.k_cache + base;
    const float* v = p.v_cache + base;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = w.row_begin + r;
      const int64_t visible = std::min(pos0 + (row - seq_row0) + 1, kv_len);
      const int64_t n = std::min(j1, visible) - j0;
      if (n <= 0) continue;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = w.kv_head * group + g;
        const int64_t st = r * group + g;
        const float* q = p.q + (row * p.n_q_heads + h) * d;
        float* acc = scratch.acc.data() + st * d;
        Ops::Scores(q, k, n, d, p.scale, scores);
        const float block_max = Ops::Max(scores, n);
        const float m_old = scratch.m[st];
        const float m_new = std::max(m_old, block_max);
        if (m_new > m_old && scratch.l[st] > 0.0f) {
          const float factor = std::exp(m_old - m_new);
          scratch.l[st] *= factor;
          Ops::Scale(acc, factor, d);
        }
        scratch.m[st] = m_new;
        scratch.l[st] += Ops::ExpSubSum(scores, n, m_new);
        Ops::AccumulatePV(acc, scores, v, n, d);
      }
    }
    j0 = j1;
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row_local = w.row_begin + r - dst.row_offset;
    for (int64_t g = 0; g < group; ++g) {
      const int64_t h = w.kv_head * group + g;
      const int64_t st = r * group + g;
      float* o = dst.o_base + row_local * dst.o_row_stride + h * d;
      const float l = scratch.l[st];
      if (l > 0.0f) {
        const float* acc = scratch.acc.data() + st * d;
        const float inv = 1.0f / l;
        for (int64_t c = 0; c < d; ++c) o[c] = acc[c] * inv;
      } else {
        for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
      }
      if (dst.lse_base != nullptr) {
        dst.lse_base[row_local * dst.lse_row_stride + h] = l > 0.0f ? scratch.m[st] + std::log(l) : -INFINITY;
      }
    }
  }
}

// Entry points of the two instantiations.
void AttendItemScalar(const PagedAttentionParams& p, const AttentionWorkItem& w, const AttentionDestination& dst,
                      AttentionScratch& scratch);
void AttendItemAvx2(const PagedAttentionParams& p, const AttentionWorkItem& w, const AttentionDestination& dst,
                    AttentionScratch& scratch);

}  // namespace lserve::cpu_detail
