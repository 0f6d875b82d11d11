// Rotary position embedding, HF rotate-half layout (apply_rotary_pos_emb):
// for each head vector v of length D = head_dim and i < D/2, with
//   angle = f32(positions[t]) * inv_freq[i]   (an f32 product, as HF computes it)
//   c = cos(angle) * attention_scaling, s = sin(angle) * attention_scaling
//   v'[i]       = v[i] * c - v[i + D/2] * s
//   v'[i + D/2] = v[i + D/2] * c + v[i] * s
#pragma once

#include <cstdint>

namespace lserve {

struct RopeParams {
  float* q;                   // [n, n_q_heads, head_dim] f32, rotated in place; may be null (then n_q_heads unused)
  float* k;                   // [n, n_kv_heads, head_dim] f32, rotated in place; may be null
  int64_t n, n_q_heads, n_kv_heads, head_dim;  // head_dim even
  const int64_t* positions;   // [n] absolute positions of the n tokens
  const float* inv_freq;      // [head_dim / 2] (rope_table.h)
  float attention_scaling;    // multiplies cos and sin (1 except yarn / longrope)
};

void RopeRef(const RopeParams& p);

}  // namespace lserve
