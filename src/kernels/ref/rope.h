// Rotary position embedding, HF rotate-half layout (apply_rotary_pos_emb):
// for each head vector v of length D = head_dim and i < D/2, with
//   angle = f32(positions[t]) * inv_freq[i]   (an f32 product, as HF computes it)
//   c = cos(angle) * attention_scaling, s = sin(angle) * attention_scaling
//   v'[i]       = v[i] * c - v[i + D/2] * s
//   v'[i + D/2] = v[i + D/2] * c + v[i] * s
#pragma once

#include <cmath>
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

// The pieces of RopeRef, shared with the CPU kernel so that it stays
// bit-identical (same f32 angle, same rounding, no fused multiply-add).

// cos and sin rows (half = head_dim / 2 entries each) of one position.
inline void RopeCosSinRow(int64_t position, const float* inv_freq, int64_t half, float attention_scaling,
                          float* cos_row, float* sin_row) {
  const float pos = static_cast<float>(position);
  for (int64_t i = 0; i < half; ++i) {
    // HF: freqs = position.float() * inv_freq in f32; cos/sin of that f32 angle.
    const float angle = pos * inv_freq[i];
    cos_row[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention_scaling;
    sin_row[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention_scaling;
  }
}

// One head vector v rotated in place by the cos/sin rows.
inline void RopeRotateHead(float* v, const float* cos_row, const float* sin_row, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i];
    const float b = v[i + half];
    v[i] = a * cos_row[i] - b * sin_row[i];
    v[i + half] = b * cos_row[i] + a * sin_row[i];
  }
}

// Every q and k head of token t rotated by that token's cos/sin rows.
inline void RopeRotateToken(const RopeParams& p, int64_t t, const float* cos_row, const float* sin_row) {
  const int64_t half = p.head_dim / 2;
  if (p.q != nullptr) {
    for (int64_t h = 0; h < p.n_q_heads; ++h) {
      RopeRotateHead(p.q + (t * p.n_q_heads + h) * p.head_dim, cos_row, sin_row, half);
    }
  }
  if (p.k != nullptr) {
    for (int64_t h = 0; h < p.n_kv_heads; ++h) {
      RopeRotateHead(p.k + (t * p.n_kv_heads + h) * p.head_dim, cos_row, sin_row, half);
    }
  }
}

}  // namespace lserve
