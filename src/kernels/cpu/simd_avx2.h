// Internal to kernels/cpu: the AVX2 code paths, compiled with AVX2/FMA/F16C
// enabled in their own translation units and called only when the CPU has
// them (CpuHasAvx2Fma). Each function documents its slice of the work; the
// public kernels in this folder split the work over the pool and dispatch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace lserve::cpu_detail {

// True when the running CPU has AVX2, FMA and F16C (checked once) and the
// SIMD paths are enabled.
bool CpuHasAvx2Fma();

// Tests: disables (false) or re-enables the SIMD paths so that the portable
// scalar fallbacks run on this machine too. Not for concurrent use with
// running kernels.
void SetSimdEnabledForTesting(bool enabled);

// Linear, weight rows [j0, j1): y[i * ldy + j] = dot(x[i, :], w[j, :]) for
// i < m (no bias). w rows are row_bytes apart, k elements each, of a dtype
// LinearSupports accepts. x is [m, k] with row stride k.
void GemvRowsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m,
                  int64_t j0, int64_t j1, float* y, int64_t ldy);

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
