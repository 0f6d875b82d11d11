// AVX2 elementwise and reduction helpers shared by the CPU kernels.
#include <immintrin.h>

#include <atomic>
#include <cstring>

#include "core/check.h"
#include "kernels/cpu/simd_avx2.h"

#pragma GCC target("avx2,fma,f16c")

namespace lserve::cpu_detail {
namespace {

inline __m256 LoadWeight8(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return _mm256_loadu_ps(static_cast<const float*>(w) + i);
    case DType::kF16:
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
    case DType::kBF16: {
      const __m256i wide = _mm256_cvtepu16_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    default: LSERVE_CHECK(false && "not a plain float dtype"); return _mm256_setzero_ps();
  }
}

inline float LoadWeight1(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(w)[i];
    case DType::kF16: return _cvtsh_ss(static_cast<const uint16_t*>(w)[i]);
    case DType::kBF16: return BF16ToF32(static_cast<const uint16_t*>(w)[i]);
    default: LSERVE_CHECK(false && "not a plain float dtype"); return 0.0f;
  }
}

}  // namespace

namespace {
std::atomic<bool> simd_enabled{true};
}  // namespace

bool CpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has && simd_enabled.load(std::memory_order_relaxed);
}

void SetSimdEnabledForTesting(bool enabled) { simd_enabled.store(enabled, std::memory_order_relaxed); }

float SumSquaresAvx2(const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
  }
  float s = HorizontalSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

void ScaleByWeightAvx2(const float* x, const void* w, DType w_dtype, float inv_rms, float* out, int64_t n) {
  const __m256 s = _mm256_set1_ps(inv_rms);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(LoadWeight8(w, w_dtype, i), _mm256_mul_ps(_mm256_loadu_ps(x + i), s)));
  }
  for (; i < n; ++i) out[i] = LoadWeight1(w, w_dtype, i) * (x[i] * inv_rms);
}

void SwigluAvx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = Exp(_mm256_xor_ps(g, sign));
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    // The tail goes through the same vector code on a zero-padded copy.
    float g_tail[8] = {}, u_tail[8] = {}, o_tail[8];
    std::memcpy(g_tail, gate + i, (n - i) * sizeof(float));
    std::memcpy(u_tail, up + i, (n - i) * sizeof(float));
    const __m256 g = _mm256_loadu_ps(g_tail);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, Exp(_mm256_xor_ps(g, sign))));
    _mm256_storeu_ps(o_tail, _mm256_mul_ps(silu, _mm256_loadu_ps(u_tail)));
    std::memcpy(out + i, o_tail, (n - i) * sizeof(float));
  }
}

float DotAvx2(const float* a, const float* b, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
  }
  if (i + 8 <= n) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    i += 8;
  }
  float s = HorizontalSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AxpyAvx2(float a, const float* v, float* out, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  }
  for (; i < n; ++i) out[i] += a * v[i];
}

void ScaleAddAvx2(float* out, float a, const float* v, float b, int64_t n) {
  const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(_mm256_loadu_ps(out + i), av, _mm256_mul_ps(_mm256_loadu_ps(v + i), bv)));
  }
  for (; i < n; ++i) out[i] = out[i] * a + v[i] * b;
}

}  // namespace lserve::cpu_detail
