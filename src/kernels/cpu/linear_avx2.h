// Internal to kernels/cpu: the AVX2 paths of the linear kernel (its weight
// conversion for the embedding, DequantizeRowsAvx2, is in simd_avx2.h).
// Compiled for AVX2/FMA/F16C in their own translation unit; call them only
// when CpuHasAvx2Fma().
//
// Every path computes each output element with one fixed sequence of float
// operations (linear_avx2.cc, "The dot product"), whatever m, the output
// columns a call or a thread covers, or the path: y[i, j] is a function of
// x[i, :] and w[j, :] only (batch invariance, RELIABILITY.md 36).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace lserve::cpu_detail {

// True when the dot product of w_dtype takes each 32-element chunk in lane
// order (element 4l + g at position 8g + l: the 4-bit and 6-bit types), so
// that the GEMV and the GEMM below take x in lane order too.
bool LinearLaneOrder(DType w_dtype);

// out [m, k] = x [m, k] with every 32-element chunk in lane order:
// out[32c + 8g + l] = x[32c + 4l + g]. k a multiple of 32.
void LaneOrderAvx2(const float* x, int64_t m, int64_t k, float* out);

// The calling thread's scratch buffer of at least n f32, aligned to a cache
// line (for x in lane order). Valid until the thread calls it again.
float* LinearScratchX(int64_t n);

// Output columns per f32 weight panel of GemmColumnsAvx2 for rows of k
// elements: a multiple of the register tile's 3 columns whose panel (columns
// x k x 4 bytes) stays in L2 beside a tile of x.
int64_t LinearPanelColumns(int64_t k);

// Linear, weight rows [j0, j1): y[i * ldy + j] = dot(x[i, :], w[j, :]) for
// i < m (no bias). w rows are row_bytes apart, k elements each, of a dtype
// LinearSupports accepts; x_lanes is x [m, k] (row stride k), in lane order
// where LinearLaneOrder(w_dtype). The two give identical bits:
// - GemvColumnsAvx2 converts the weights in registers for every group of up
//   to 4 rows of x;
// - GemmColumnsAvx2 converts each panel of LinearPanelColumns(k) weight rows
//   to f32 once and applies it to all m rows in register tiles of 4 rows x 3
//   columns: the faster path for many rows.
void GemvColumnsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x_lanes, int64_t m,
                     int64_t j0, int64_t j1, float* y, int64_t ldy);
void GemmColumnsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x_lanes, int64_t m,
                     int64_t j0, int64_t j1, float* y, int64_t ldy);

}  // namespace lserve::cpu_detail
