// Internal to kernels/cpu: the AVX2/FMA vector primitives of the attention
// kernel (the `Ops` policy of attention_impl.h), for the AVX2 translation
// unit only (attention_avx2.cc): the functions are compiled for AVX2/FMA
// whatever the including file's target.
//
// Every call works on the G query heads of one row (the heads of one GQA
// group, contiguous: q [G, d]) against n consecutive keys of one page
// (k, v [n, d]), so each key and value row is loaded from memory once per row
// and then reused from L1 by the G heads.
//
// Bits. A score is a pure function of (q, k): lane i of an 8-lane partial sum
// accumulates q[c] * k[c] for c = i mod 8 in ascending c (one FMA chain), and
// the 8 lanes are summed in the order ((0+1)+(2+3)) + ((4+5)+(6+7)), whichever
// tile (1 head x 8 keys, 3 or 2 heads x 4 keys, one key) computed it. Each
// lane of the P.V accumulator is one FMA chain over the keys in ascending
// order. So a row's result depends on its own key pieces only, never on how
// rows, heads or keys were tiled around it. (Head dims without a fixed-size
// path, not 16/32/64/128, use one generic path, with the same property.)
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/simd_avx2.h"

namespace lserve::cpu_detail {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

// The sums of 8 accumulators, lane i = the sum of acc[i]'s lanes in the tree
// order above: one transpose-and-add tree instead of 8 horizontal sums.
inline __m256 TreeSums8(const __m256 acc[8]) {
  const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]);
  const __m256 t1 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]);
  const __m256 t3 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // lanes: 0 1 2 3 | 0 1 2 3 (sums of lanes 0-3 | 4-7)
  const __m256 u1 = _mm256_hadd_ps(t2, t3);  // lanes: 4 5 6 7 | 4 5 6 7
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// The sum of one accumulator's lanes in the same tree order.
inline float TreeSum(__m256 v) {
  const __m256 t = _mm256_hadd_ps(v, v);  // 01 23 01 23 | 45 67 45 67
  const __m256 u = _mm256_hadd_ps(t, t);  // 0123 x4 | 4567 x4
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
}

template <int kD>
inline float Dot1Key(const float* q, const float* k) {
  __m256 acc = _mm256_setzero_ps();
  for (int c = 0; c < kD; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(k + c), acc);
  return TreeSum(acc);
}

// One query against 8 consecutive keys (rows of k, stride kD).
template <int kD>
inline __m256 Dot8Keys(const float* q, const float* k) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int c = 0; c < kD; c += 8) {
    const __m256 qc = _mm256_loadu_ps(q + c);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k + j * kD + c), acc[j]);
  }
  return TreeSums8(acc);
}

// Two queries against 4 consecutive keys: lanes 0-3 = q0 . k_j, 4-7 = q1 . k_j
// (6 loads per 8 FMAs instead of 9).
template <int kD>
inline __m256 Dot2Heads4Keys(const float* q0, const float* q1, const float* k) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int c = 0; c < kD; c += 8) {
    const __m256 a = _mm256_loadu_ps(q0 + c);
    const __m256 b = _mm256_loadu_ps(q1 + c);
    for (int j = 0; j < 4; ++j) {
      const __m256 kj = _mm256_loadu_ps(k + j * kD + c);
      acc[j] = _mm256_fmadd_ps(a, kj, acc[j]);
      acc[4 + j] = _mm256_fmadd_ps(b, kj, acc[4 + j]);
    }
  }
  return TreeSums8(acc);
}

// The sums of 4 accumulators in the tree order: lane i = sum of acc[i].
inline __m128 TreeSums4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));  // 0 1 2 3 | 0 1 2 3
  return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

// Three queries against 4 consecutive keys: 12 FMA chains, 7 loads per 12
// FMAs. lanes 0-3 of `ab` = q0 . k_j, 4-7 = q1 . k_j; `c` = q2 . k_j.
template <int kD>
inline void Dot3Heads4Keys(const float* q0, const float* k, __m256* ab, __m128* c) {
  __m256 acc[12];
#pragma GCC unroll 12
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_setzero_ps();
  for (int x = 0; x < kD; x += 8) {
    const __m256 a = _mm256_loadu_ps(q0 + x);
    const __m256 b = _mm256_loadu_ps(q0 + kD + x);
    const __m256 e = _mm256_loadu_ps(q0 + 2 * kD + x);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256 kj = _mm256_loadu_ps(k + j * kD + x);
      acc[j] = _mm256_fmadd_ps(a, kj, acc[j]);
      acc[4 + j] = _mm256_fmadd_ps(b, kj, acc[4 + j]);
      acc[8 + j] = _mm256_fmadd_ps(e, kj, acc[8 + j]);
    }
  }
  *ab = TreeSums8(acc);
  *c = TreeSums4(acc[8], acc[9], acc[10], acc[11]);
}

// s[g * s_stride + j] = scale * (q_g . k_j) for g < heads, j < n, in head
// tiles of 3 (12 chains), 2 (8 chains) or 1 (8 keys at a time).
template <int kD>
void ScoresFixed(const float* q, int64_t heads, const float* k, int64_t n, float scale, float* s, int64_t s_stride) {
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t g = 0;
  for (; heads - g >= 5 || heads - g == 3; g += 3) {
    const float* q0 = q + g * kD;
    float* s0 = s + g * s_stride;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      __m256 ab;
      __m128 c;
      Dot3Heads4Keys<kD>(q0, k + j * kD, &ab, &c);
      ab = _mm256_mul_ps(ab, sv);
      _mm_storeu_ps(s0 + j, _mm256_castps256_ps128(ab));
      _mm_storeu_ps(s0 + s_stride + j, _mm256_extractf128_ps(ab, 1));
      _mm_storeu_ps(s0 + 2 * s_stride + j, _mm_mul_ps(c, _mm256_castps256_ps128(sv)));
    }
    for (; j < n; ++j) {
      for (int h = 0; h < 3; ++h) s0[h * s_stride + j] = Dot1Key<kD>(q0 + h * kD, k + j * kD) * scale;
    }
  }
  for (; heads - g >= 2; g += 2) {
    const float* q0 = q + g * kD;
    float* s0 = s + g * s_stride;
    float* s1 = s0 + s_stride;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const __m256 r = _mm256_mul_ps(Dot2Heads4Keys<kD>(q0, q0 + kD, k + j * kD), sv);
      _mm_storeu_ps(s0 + j, _mm256_castps256_ps128(r));
      _mm_storeu_ps(s1 + j, _mm256_extractf128_ps(r, 1));
    }
    for (; j < n; ++j) {
      s0[j] = Dot1Key<kD>(q0, k + j * kD) * scale;
      s1[j] = Dot1Key<kD>(q0 + kD, k + j * kD) * scale;
    }
  }
  if (g < heads) {
    const float* q0 = q + g * kD;
    float* s0 = s + g * s_stride;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s0 + j, _mm256_mul_ps(Dot8Keys<kD>(q0, k + j * kD), sv));
    for (; j < n; ++j) s0[j] = Dot1Key<kD>(q0, k + j * kD) * scale;
  }
}

// acc[h][c] = acc[h][c] * factor[h] + sum_j p[h * p_stride + j] * v[j][c] for
// kHeads heads and the kVecs x 8 lanes from c0, the accumulators held in
// registers over the keys. Tiles of 3 heads x 4 vectors or 1 head x 8 vectors
// keep 8-12 FMA chains in flight (enough to hide the FMA latency) within the
// 16 vector registers.
template <int kD, int kHeads, int kVecs>
inline void AccumulateTile(float* acc, const float* factor, const float* p, int64_t p_stride, const float* v, int64_t n,
                           int c0) {
  // (The unroll pragmas let GCC keep the accumulator array in registers.)
  __m256 a[kHeads][kVecs];
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) {
    const __m256 f = _mm256_set1_ps(factor[h]);
#pragma GCC unroll 8
    for (int x = 0; x < kVecs; ++x) a[h][x] = _mm256_mul_ps(_mm256_loadu_ps(acc + h * kD + c0 + 8 * x), f);
  }
  for (int64_t j = 0; j < n; ++j) {
    __m256 pj[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) pj[h] = _mm256_broadcast_ss(p + h * p_stride + j);
#pragma GCC unroll 8
    for (int x = 0; x < kVecs; ++x) {
      const __m256 vx = _mm256_loadu_ps(v + j * kD + c0 + 8 * x);
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) a[h][x] = _mm256_fmadd_ps(pj[h], vx, a[h][x]);
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) {
#pragma GCC unroll 8
    for (int x = 0; x < kVecs; ++x) _mm256_storeu_ps(acc + h * kD + c0 + 8 * x, a[h][x]);
  }
}

template <int kD, int kHeads>
inline void AccumulateHeads(float* acc, const float* factor, const float* p, int64_t p_stride, const float* v,
                            int64_t n) {
  constexpr int kMaxVecs = kHeads == 1 ? 8 : 4;
  constexpr int kVecs = kD / 8 < kMaxVecs ? kD / 8 : kMaxVecs;
  for (int c0 = 0; c0 < kD; c0 += 8 * kVecs) AccumulateTile<kD, kHeads, kVecs>(acc, factor, p, p_stride, v, n, c0);
}

template <int kD>
void AccumulateFixed(float* acc, const float* factor, const float* p, int64_t p_stride, int64_t heads, const float* v,
                     int64_t n) {
  int64_t g = 0;
  // Tiles of 3 heads, the rest as 2 + 2 (4 left) or 2 / 1.
  for (; heads - g >= 5 || heads - g == 3; g += 3) {
    AccumulateHeads<kD, 3>(acc + g * kD, factor + g, p + g * p_stride, p_stride, v, n);
  }
  for (; heads - g >= 2; g += 2) AccumulateHeads<kD, 2>(acc + g * kD, factor + g, p + g * p_stride, p_stride, v, n);
  if (g < heads) AccumulateHeads<kD, 1>(acc + g * kD, factor + g, p + g * p_stride, p_stride, v, n);
}

struct Avx2AttentionOps {
  static void Scores(const float* q, int64_t heads, const float* k, int64_t n, int64_t d, float scale, float* s,
                     int64_t s_stride) {
    switch (d) {
      case 16: ScoresFixed<16>(q, heads, k, n, scale, s, s_stride); return;
      case 32: ScoresFixed<32>(q, heads, k, n, scale, s, s_stride); return;
      case 64: ScoresFixed<64>(q, heads, k, n, scale, s, s_stride); return;
      case 128: ScoresFixed<128>(q, heads, k, n, scale, s, s_stride); return;
      default:
        for (int64_t g = 0; g < heads; ++g) {
          for (int64_t j = 0; j < n; ++j) s[g * s_stride + j] = DotAvx2(q + g * d, k + j * d, d) * scale;
        }
    }
  }
  static float Max(const float* s, int64_t n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float m = _mm_cvtss_f32(m4);
    for (; j < n; ++j) m = std::max(m, s[j]);
    return m;
  }
  // s[j] = exp(s[j] - m); returns the sum.
  static float ExpSubSum(float* s, int64_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
      _mm256_storeu_ps(s + j, e);
      sum = _mm256_add_ps(sum, e);
    }
    float total = HorizontalSum(sum);
    if (j < n) {
      float tail[8];
      for (int t = 0; t < 8; ++t) tail[t] = j + t < n ? s[j + t] - m : -INFINITY;
      float e[8];
      _mm256_storeu_ps(e, Exp(_mm256_loadu_ps(tail)));
      for (int64_t t = 0; j + t < n; ++t) {
        s[j + t] = e[t];
        total += e[t];
      }
    }
    return total;
  }
  // acc[g][c] = acc[g][c] * factor[g] + sum_j p[g * p_stride + j] * v[j][c] for g < heads.
  static void AccumulatePV(float* acc, const float* factor, const float* p, int64_t p_stride, int64_t heads,
                           const float* v, int64_t n, int64_t d) {
    switch (d) {
      case 16: AccumulateFixed<16>(acc, factor, p, p_stride, heads, v, n); return;
      case 32: AccumulateFixed<32>(acc, factor, p, p_stride, heads, v, n); return;
      case 64: AccumulateFixed<64>(acc, factor, p, p_stride, heads, v, n); return;
      case 128: AccumulateFixed<128>(acc, factor, p, p_stride, heads, v, n); return;
      default:
        for (int64_t g = 0; g < heads; ++g) {
          float* a = acc + g * d;
          for (int64_t c = 0; c < d; ++c) a[c] *= factor[g];
          for (int64_t j = 0; j < n; ++j) AxpyAvx2(p[g * p_stride + j], v + j * d, a, d);
        }
    }
  }
};

#pragma GCC pop_options

}  // namespace lserve::cpu_detail
