// The log-sum-exp merge of partial attention results (STYLE.md practice 9).
//
// A partial state over a subset S of the keys of one (query row, head) is
//   v   = sum_{j in S} softmax_S(score)_j * V_j     ([head_dim])
//   lse = log(sum_{j in S} exp(score_j))            (natural log, scaled scores)
// The EMPTY state (S = {}) is lse = -inf; its v is never read and is written
// as zeros. Merging two states gives the state over the union:
//   m = max(lse_a, lse_b); w_a = exp(lse_a - m); w_b = exp(lse_b - m)
//   v = (w_a v_a + w_b v_b) / (w_a + w_b); lse = m + log(w_a + w_b)
// Merging with an empty state returns the other state unchanged (bit-exact);
// merging two empty states gives the empty state (v = 0, lse = -inf).
#pragma once

#include <cmath>
#include <cstdint>

namespace lserve {

struct MergeStatesParams {
  const float* v_a;    // [n, head_dim] f32
  const float* lse_a;  // [n] f32
  const float* v_b;    // [n, head_dim] f32
  const float* lse_b;  // [n] f32
  float* v_out;        // [n, head_dim] f32; may alias v_a or v_b
  float* lse_out;      // [n] f32, nullable; may alias lse_a or lse_b
  int64_t n, head_dim;
};

void MergeStatesRef(const MergeStatesParams& p);

// Merges the state (v_b, lse_b) into (v, *lse) in place, with the rules above.
inline void MergeStateInPlace(float* v, float* lse, const float* v_b, float lse_b, int64_t head_dim) {
  const float lse_a = *lse;
  if (lse_b == -INFINITY) {
    if (lse_a == -INFINITY) {
      for (int64_t d = 0; d < head_dim; ++d) v[d] = 0.0f;
    }
    return;
  }
  if (lse_a == -INFINITY) {
    for (int64_t d = 0; d < head_dim; ++d) v[d] = v_b[d];
    *lse = lse_b;
    return;
  }
  const float m = lse_a > lse_b ? lse_a : lse_b;
  const float w_a = std::exp(lse_a - m);
  const float w_b = std::exp(lse_b - m);
  const float inv = 1.0f / (w_a + w_b);
  for (int64_t d = 0; d < head_dim; ++d) v[d] = (w_a * v[d] + w_b * v_b[d]) * inv;
  *lse = m + std::log(w_a + w_b);
}

}  // namespace lserve
