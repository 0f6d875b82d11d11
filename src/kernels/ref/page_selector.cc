#include "kernels/ref/page_selector.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "kernels/ref/sparse_attention.h"

namespace lserve {

void SelectPagesOfHead(const PageSelectorParams& p, int64_t seq, int64_t kv_head, std::vector<float>& scores,
                       std::vector<int32_t>& order) {
  const int64_t list = seq * p.n_kv_heads + kv_head;
  int32_t* out = p.selected_pages + list * p.max_pages;
  const int64_t len = std::max<int64_t>(0, p.kv_len[seq]);
  const int64_t n_pages = (len + p.page_size - 1) / p.page_size;
  if (p.head_mode[kv_head] != kHeadModeRetrieval || p.max_pages == 0 || n_pages == 0) {
    p.n_selected[list] = 0;
    return;
  }
  if (n_pages <= p.max_pages) {
    for (int64_t b = 0; b < n_pages; ++b) out[b] = static_cast<int32_t>(b);
    p.n_selected[list] = n_pages;
    return;
  }
  LSERVE_CHECK(p.page_table_start_r[seq] + n_pages <= p.page_table_start_r[seq + 1]);
  const int64_t d = p.head_dim;
  const int64_t g = p.page_size / p.logical_page_size;
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t slot = p.pool_slot[kv_head];
  // Candidates: every page but the newest, all of whose logical pages hold tokens.
  const int64_t candidates = n_pages - 1;
  scores.assign(static_cast<size_t>(candidates), -INFINITY);
  for (int64_t b = 0; b < candidates; ++b) {
    const int64_t page = p.page_table_r[p.page_table_start_r[seq] + b];
    for (int64_t i = 0; i < g && b * p.page_size + i * p.logical_page_size < len; ++i) {
      const float* kmax = p.k_stats + ((page * p.n_retrieval_heads + slot) * g + i) * 2 * d;
      const float* kmin = kmax + d;
      for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
        const float* q = p.q + (seq * p.n_q_heads + h) * d;
        float score = 0.0f;
        for (int64_t c = 0; c < d; ++c) score += std::max(q[c] * kmax[c], q[c] * kmin[c]);
        scores[b] = std::max(scores[b], score);
      }
    }
  }
  order.resize(static_cast<size_t>(candidates));
  for (int64_t b = 0; b < candidates; ++b) order[b] = static_cast<int32_t>(b);
  const int64_t keep = p.max_pages - 1;
  // Higher score first, then lower index; a NaN score (broken stats) ranks last.
  auto better = [&](int32_t a, int32_t b) {
    const float sa = std::isnan(scores[a]) ? -INFINITY : scores[a];
    const float sb = std::isnan(scores[b]) ? -INFINITY : scores[b];
    return sa != sb ? sa > sb : a < b;
  };
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
  std::sort(order.begin(), order.begin() + keep);
  for (int64_t i = 0; i < keep; ++i) out[i] = order[i];
  out[keep] = static_cast<int32_t>(n_pages - 1);
  p.n_selected[list] = keep + 1;
}

void SelectPagesRef(const PageSelectorParams& p) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0 &&
               p.logical_page_size > 0 && p.page_size % p.logical_page_size == 0 && p.max_pages >= 0);
  std::vector<float> scores;
  std::vector<int32_t> order;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    for (int64_t kv_head = 0; kv_head < p.n_kv_heads; ++kv_head) SelectPagesOfHead(p, s, kv_head, scores, order);
  }
}

}  // namespace lserve
