// Internal to kernels/cpu: the AVX2 code paths, compiled with AVX2/FMA/F16C
// enabled in their own translation units and called only when the CPU has
// them (CpuHasAvx2Fma). Each function documents its slice of the work; the
// public kernels in this folder split the work over the pool and dispatch.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace lserve::cpu_detail {

// Vector primitives shared by the AVX2 translation units. Compiled for
// AVX2/FMA/F16C whatever the including file's target; call them only from
// code compiled for that target too.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) for 8 floats: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts so the reduction is exact to f32), exp(r) by its degree-6 Taylor
// polynomial (error < 2e-8 relative on the interval), times 2^n built in
// the exponent bits. Inputs are clamped to [-87.3, 88.3], where 2^n and the
// result stay normal and finite: exp of a larger input returns ~2e38
// (not inf), of a smaller one ~1.2e-38 (not 0), which silu turns into the
// correct limits x and 0 to f32 precision.
inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

#pragma GCC pop_options

// True when the running CPU has AVX2, FMA and F16C (checked once) and the
// SIMD paths are enabled.
bool CpuHasAvx2Fma();

// Tests: disables (false) or re-enables the SIMD paths so that the portable
// scalar fallbacks run on this machine too. Not for concurrent use with
// running kernels.
void SetSimdEnabledForTesting(bool enabled);

// Dequantizes weight rows [j0, j1) into dst [(j1 - j0), k] f32, bit-exact with
// DequantizeRow (formats/gguf_quant.h).
void DequantizeRowsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1,
                        float* dst);

// Elementwise and reduction helpers over f32 vectors of length n.
float SumSquaresAvx2(const float* x, int64_t n);
// out[i] = w[i] * (x[i] * inv_rms), w of dtype F32/F16/BF16 (RmsNorm).
void ScaleByWeightAvx2(const float* x, const void* w, DType w_dtype, float inv_rms, float* out, int64_t n);
// out[i] = silu(gate[i]) * up[i] with a vectorised exp (SwiGLU).
void SwigluAvx2(const float* gate, const float* up, float* out, int64_t n);
// Dot product and out += a * v.
float DotAvx2(const float* a, const float* b, int64_t n);
void AxpyAvx2(float a, const float* v, float* out, int64_t n);
// out = out * a + v * b
void ScaleAddAvx2(float* out, float a, const float* v, float b, int64_t n);

}  // namespace lserve::cpu_detail
