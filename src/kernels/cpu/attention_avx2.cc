// The AVX2 instantiation of the attention item kernel (attention_impl.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/attention.h"

#pragma GCC target("avx2,fma,f16c")

#include "kernels/cpu/attention_impl.h"

namespace lserve::cpu_detail {
namespace {

// Scores of 8 consecutive keys (rows of k, stride kD) against q: 8 running
// accumulators, then one transpose-and-add tree instead of 8 horizontal sums.
template <int kD>
inline __m256 Dot8Keys(const float* q, const float* k) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int c = 0; c < kD; c += 8) {
    const __m256 qc = _mm256_loadu_ps(q + c);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k + j * kD + c), acc[j]);
  }
  const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]);
  const __m256 t1 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]);
  const __m256 t3 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // lanes: 0 1 2 3 | 0 1 2 3 (low / high halves)
  const __m256 u1 = _mm256_hadd_ps(t2, t3);  // lanes: 4 5 6 7 | 4 5 6 7
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

template <int kD>
void ScoresFixed(const float* q, const float* k, int64_t n, float scale, float* s) {
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(Dot8Keys<kD>(q, k + j * kD), sv));
  for (; j < n; ++j) {
    __m256 acc = _mm256_setzero_ps();
    for (int c = 0; c < kD; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(k + j * kD + c), acc);
    s[j] = HorizontalSum(acc) * scale;
  }
}

// acc += sum_j p[j] v[j], the accumulator held in registers over the keys.
template <int kD>
void AccumulateFixed(float* acc, const float* p, const float* v, int64_t n) {
  __m256 a[kD / 8];
  for (int c = 0; c < kD / 8; ++c) a[c] = _mm256_loadu_ps(acc + 8 * c);
  for (int64_t j = 0; j < n; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j]);
    for (int c = 0; c < kD / 8; ++c) a[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + j * kD + 8 * c), a[c]);
  }
  for (int c = 0; c < kD / 8; ++c) _mm256_storeu_ps(acc + 8 * c, a[c]);
}

struct Avx2Ops {
  static void Scores(const float* q, const float* k, int64_t n, int64_t d, float scale, float* s) {
    switch (d) {
      case 16: ScoresFixed<16>(q, k, n, scale, s); return;
      case 32: ScoresFixed<32>(q, k, n, scale, s); return;
      case 64: ScoresFixed<64>(q, k, n, scale, s); return;
      case 128: ScoresFixed<128>(q, k, n, scale, s); return;
      default:
        for (int64_t j = 0; j < n; ++j) s[j] = DotAvx2(q, k + j * d, d) * scale;
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
  static void Scale(float* acc, float f, int64_t d) {
    const __m256 fv = _mm256_set1_ps(f);
    int64_t c = 0;
    for (; c + 8 <= d; c += 8) _mm256_storeu_ps(acc + c, _mm256_mul_ps(_mm256_loadu_ps(acc + c), fv));
    for (; c < d; ++c) acc[c] *= f;
  }
  static void AccumulatePV(float* acc, const float* p, const float* v, int64_t n, int64_t d) {
    switch (d) {
      case 16: AccumulateFixed<16>(acc, p, v, n); return;
      case 32: AccumulateFixed<32>(acc, p, v, n); return;
      case 64: AccumulateFixed<64>(acc, p, v, n); return;
      case 128: AccumulateFixed<128>(acc, p, v, n); return;
      default:
        for (int64_t j = 0; j < n; ++j) AxpyAvx2(p[j], v + j * d, acc, d);
    }
  }
};

}  // namespace

void AttendItemAvx2(const PagedAttentionParams& p, const AttentionWorkItem& w, const AttentionDestination& dst,
                    AttentionScratch& scratch) {
  AttendItem<Avx2Ops>(p, w, dst, scratch);
}

}  // namespace lserve::cpu_detail
