#include "kernels/ref/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"

namespace lserve {
namespace {

// Element offset of key/value j of KV head kv_head of sequence s in its pool.
int64_t CacheOffset(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t j) {
  const int64_t b = j / p.page_size;
  const int64_t slot = p.pool_slot[kv_head];
  if (p.head_mode[kv_head] == kHeadModeRetrieval) {
    LSERVE_CHECK(p.page_table_start_r[s] + b < p.page_table_start_r[s + 1]);
    const int64_t page = p.page_table_r[p.page_table_start_r[s] + b];
    return ((page * p.n_retrieval_heads + slot) * p.page_size + j % p.page_size) * p.head_dim;
  }
  const int64_t last_page = (p.kv_len[s] - 1) / p.page_size;
  LSERVE_CHECK(b < p.stream_sink_pages || b > last_page - RingPagesOf(p, s));  // the ring still holds b
  const int64_t table_slot = RingSlotOf(b, p.stream_sink_pages, RingPagesOf(p, s));
  LSERVE_CHECK(p.page_table_start_s[s] + table_slot < p.page_table_start_s[s + 1]);
  const int64_t page = p.page_table_s[p.page_table_start_s[s] + table_slot];
  return ((page * p.n_streaming_heads + slot) * p.page_size + j % p.page_size) * p.head_dim;
}

void AppendRange(int64_t begin, int64_t end, std::vector<int64_t>& keys) {
  for (int64_t j = begin; j < end; ++j) keys.push_back(j);
}

// The key set of (row at pos, KV head) in ascending order, and its page count.
int64_t CollectKeys(const SparseAttentionParams& p, int64_t s, int64_t kv_head, int64_t pos,
                    std::vector<int64_t>& keys) {
  keys.clear();
  const int64_t ps = p.page_size;
  const int64_t visible = std::max<int64_t>(0, std::min(pos + 1, p.kv_len[s]));
  if (p.head_mode[kv_head] == kHeadModeStreaming) {
    const StreamingKeyRanges r = StreamingRangesOf(pos, p.kv_len[s], SinkOf(p, s), LocalOf(p, s));
    AppendRange(0, r.sink_end, keys);
    AppendRange(r.local_begin, r.visible_end, keys);
    return StreamingPagesVisited(r, ps);
  }
  if (p.selected_pages == nullptr || p.n_selected[s * p.n_kv_heads + kv_head] < 0) {
    AppendRange(0, visible, keys);
    return PagesSpanned(0, visible, ps);
  }
  const int64_t list = s * p.n_kv_heads + kv_head;
  const int32_t* sel = p.selected_pages + list * p.max_selected;
  LSERVE_CHECK(p.n_selected[list] >= 0 && p.n_selected[list] <= p.max_selected);
  int64_t pages = 0;
  for (int64_t i = 0; i < p.n_selected[list]; ++i) {
    LSERVE_CHECK(sel[i] >= 0 && (i == 0 || sel[i] > sel[i - 1]));
    const int64_t begin = sel[i] * ps;
    const int64_t end = std::min((sel[i] + 1) * ps, visible);
    if (end <= begin) continue;  // a page past the sequence's end holds no key
    AppendRange(begin, end, keys);
    ++pages;
  }
  return pages;
}

}  // namespace

void SparseAttentionRef(const SparseAttentionParams& p) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0);
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t d = p.head_dim;
  std::vector<int64_t> keys;
  std::vector<float> scores;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    for (int64_t row = p.q_start[s]; row < p.q_start[s + 1]; ++row) {
      const int64_t pos = p.q_pos0[s] + (row - p.q_start[s]);
      for (int64_t kv_head = 0; kv_head < p.n_kv_heads; ++kv_head) {
        const int64_t pages = CollectKeys(p, s, kv_head, pos, keys);
        if (p.counters != nullptr) {
          p.counters->blocks_visited += pages;
          p.counters->blocks_dense += PagesSpanned(0, std::min(pos + 1, p.kv_len[s]), p.page_size);
        }
        if (p.seq_counters != nullptr) {
          p.seq_counters[s].blocks_visited += pages;
          p.seq_counters[s].blocks_dense += PagesSpanned(0, std::min(pos + 1, p.kv_len[s]), p.page_size);
        }
        const bool retrieval = p.head_mode[kv_head] == kHeadModeRetrieval;
        const float* k_cache = retrieval ? p.k_cache_r : p.k_cache_s;
        const float* v_cache = retrieval ? p.v_cache_r : p.v_cache_s;
        const int64_t n = static_cast<int64_t>(keys.size());
        for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
          const float* q = p.q + (row * p.n_q_heads + h) * d;
          float* out = p.out + (row * p.n_q_heads + h) * d;
          for (int64_t c = 0; c < d; ++c) out[c] = 0.0f;
          if (n == 0) {
            if (p.lse != nullptr) p.lse[row * p.n_q_heads + h] = -INFINITY;
            continue;
          }
          // The arithmetic of PagedAttentionRef, key by key in ascending order.
          scores.assign(static_cast<size_t>(n), 0.0f);
          float max_score = -INFINITY;
          for (int64_t i = 0; i < n; ++i) {
            const float* k = k_cache + CacheOffset(p, s, kv_head, keys[i]);
            float dot = 0.0f;
            for (int64_t c = 0; c < d; ++c) dot += q[c] * k[c];
            scores[i] = dot * p.scale;
            max_score = std::max(max_score, scores[i]);
          }
          float sum = 0.0f;
          for (int64_t i = 0; i < n; ++i) {
            scores[i] = std::exp(scores[i] - max_score);
            sum += scores[i];
          }
          for (int64_t i = 0; i < n; ++i) {
            const float* v = v_cache + CacheOffset(p, s, kv_head, keys[i]);
            const float w = scores[i] / sum;
            for (int64_t c = 0; c < d; ++c) out[c] += w * v[c];
          }
          if (p.lse != nullptr) p.lse[row * p.n_q_heads + h] = max_score + std::log(sum);
        }
      }
    }
  }
}

}  // namespace lserve
