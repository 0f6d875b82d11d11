#include "kernels/ref/rope.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace lserve {
namespace {

void RotateHead(float* v, const float* cos_row, const float* sin_row, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i];
    const float b = v[i + half];
    v[i] = a * cos_row[i] - b * sin_row[i];
    v[i + half] = b * cos_row[i] + a * sin_row[i];
  }
}

}  // namespace

void RopeRef(const RopeParams& p) {
  LSERVE_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0);
  const int64_t half = p.head_dim / 2;
  std::vector<float> cos_row(half), sin_row(half);
  for (int64_t t = 0; t < p.n; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      // HF: freqs = position.float() * inv_freq in f32; cos/sin of that f32 angle.
      const float angle = pos * p.inv_freq[i];
      cos_row[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * p.attention_scaling;
      sin_row[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * p.attention_scaling;
    }
    if (p.q != nullptr) {
      for (int64_t h = 0; h < p.n_q_heads; ++h) RotateHead(p.q + (t * p.n_q_heads + h) * p.head_dim, cos_row.data(), sin_row.data(), half);
    }
    if (p.k != nullptr) {
      for (int64_t h = 0; h < p.n_kv_heads; ++h) RotateHead(p.k + (t * p.n_kv_heads + h) * p.head_dim, cos_row.data(), sin_row.data(), half);
    }
  }
}

}  // namespace lserve
