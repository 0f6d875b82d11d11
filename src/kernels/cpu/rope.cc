#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/simd_avx2.h"

namespace lserve {
namespace {

// The cos/sin table of the last call on this thread. A forward pass calls
// RoPE once per layer with the same positions and frequencies, so every
// layer after the first reuses the table (the key compares contents, not
// pointers, so a table rewritten in place is never mistaken for the old one).
struct RopeCosSinCache {
  std::vector<int64_t> positions;
  std::vector<float> inv_freq;
  float attention_scaling = 0.0f;
  std::vector<float> cos, sin;  // [n, half]

  bool Matches(const RopeParams& p, int64_t half) const {
    return attention_scaling == p.attention_scaling && static_cast<int64_t>(positions.size()) == p.n &&
           static_cast<int64_t>(inv_freq.size()) == half &&
           std::memcmp(positions.data(), p.positions, sizeof(int64_t) * p.n) == 0 &&
           std::memcmp(inv_freq.data(), p.inv_freq, sizeof(float) * half) == 0;
  }
};

}  // namespace

void RopeCpu(const RopeParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0);
  if (p.n <= 0) return;
  const int64_t half = p.head_dim / 2;
  thread_local RopeCosSinCache cache;
  const bool fresh = !cache.Matches(p, half);
  if (fresh) {
    cache.positions.assign(p.positions, p.positions + p.n);
    cache.inv_freq.assign(p.inv_freq, p.inv_freq + half);
    cache.attention_scaling = p.attention_scaling;
    cache.cos.resize(static_cast<size_t>(p.n * half));
    cache.sin.resize(static_cast<size_t>(p.n * half));
  }
  float* cos_table = cache.cos.data();
  float* sin_table = cache.sin.data();
  const int64_t heads = (p.q != nullptr ? p.n_q_heads : 0) + (p.k != nullptr ? p.n_kv_heads : 0);
  const int64_t max_chunks = std::max<int64_t>(1, p.n * heads * p.head_dim / 4096);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* c = cos_table + t * half;
      float* s = sin_table + t * half;
      if (fresh) RopeCosSinRow(p.positions[t], p.inv_freq, half, p.attention_scaling, c, s);
      RopeRotateToken(p, t, c, s);
    }
  });
}

}  // namespace lserve
