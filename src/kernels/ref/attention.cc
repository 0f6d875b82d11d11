#include "kernels/ref/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"

namespace lserve {

// Two passes per (row, head): scores of all visible keys, then softmax and the
// weighted sum of values, all in f32.
void PagedAttentionRef(const PagedAttentionParams& p) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0);
  const int64_t group = p.n_q_heads / p.n_kv_heads;
  const int64_t d = p.head_dim;
  std::vector<float> scores;
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    const int32_t* pages = p.page_table + p.page_table_start[s];
    const int64_t n_pages = p.page_table_start[s + 1] - p.page_table_start[s];
    LSERVE_CHECK(n_pages * p.page_size >= p.kv_len[s]);
    for (int64_t row = p.q_start[s]; row < p.q_start[s + 1]; ++row) {
      const int64_t pos = p.q_pos0[s] + (row - p.q_start[s]);
      const int64_t visible = std::min(pos + 1, p.kv_len[s]);
      for (int64_t h = 0; h < p.n_q_heads; ++h) {
        const int64_t kv_head = h / group;
        const float* q = p.q + (row * p.n_q_heads + h) * d;
        float* out = p.out + (row * p.n_q_heads + h) * d;
        for (int64_t c = 0; c < d; ++c) out[c] = 0.0f;
        if (visible <= 0) {
          if (p.lse != nullptr) p.lse[row * p.n_q_heads + h] = -INFINITY;
          continue;
        }
        scores.assign(visible, 0.0f);
        float max_score = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const int64_t page = pages[j / p.page_size];
          const float* k = p.k_cache + ((page * p.n_kv_heads + kv_head) * p.page_size + j % p.page_size) * d;
          float dot = 0.0f;
          for (int64_t c = 0; c < d; ++c) dot += q[c] * k[c];
          scores[j] = dot * p.scale;
          max_score = std::max(max_score, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < visible; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          sum += scores[j];
        }
        for (int64_t j = 0; j < visible; ++j) {
          const int64_t page = pages[j / p.page_size];
          const float* v = p.v_cache + ((page * p.n_kv_heads + kv_head) * p.page_size + j % p.page_size) * d;
          const float w = scores[j] / sum;
          for (int64_t c = 0; c < d; ++c) out[c] += w * v[c];
        }
        if (p.lse != nullptr) p.lse[row * p.n_q_heads + h] = max_score + std::log(sum);
      }
    }
  }
}

}  // namespace lserve
