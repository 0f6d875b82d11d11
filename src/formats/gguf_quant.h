// Dequantization of GGUF tensor rows to f32, bit-exact with ggml's reference
// dequantize_row_* (ggml-quants.c) and with the Python gguf.quants module:
// every output element is computed with the same float operations in the
// same order, each rounded once (this file is built without FP contraction,
// as the project builds in ISO C++ mode: a fused multiply-add would change
// Q4_1 / Q4_K results in the last bit).
//
// Block layouts (little-endian, f16 = IEEE half):
//   Q8_0  32 el, 34 B: f16 d, i8 q[32]                      x = q*d
//   Q4_0  32 el, 18 B: f16 d, u8 qs[16]                     x = (nib-8)*d
//         element j < 16 is the low nibble of qs[j], j >= 16 the high one of qs[j-16]
//   Q4_1  32 el, 20 B: f16 d, f16 m, u8 qs[16]              x = nib*d + m
//   Q4_K 256 el, 144 B: f16 d, f16 dmin, u8 scales[12], u8 qs[128]
//         8 sub-blocks of 32 with 6-bit scale sc and min mn: x = (d*sc)*nib - dmin*mn
//   Q6_K 256 el, 210 B: u8 ql[128], u8 qh[64], i8 scales[16], f16 d
//         16 sub-blocks of 16:  x = (d*scale)*(q6-32)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/tensor_info.h"

namespace lserve {

// True for the types DequantizeRow handles: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
// Q4_K, Q6_K.
bool CanDequantize(DType type);

// Converts n elements stored as `type` at `src` (DTypeBytesFor(type, n)
// bytes, any alignment) to f32 at `dst`. n must be a whole number of blocks.
// Unimplemented for other types; InvalidArgument for a bad n.
Status DequantizeRow(DType type, const uint8_t* src, int64_t n, float* dst);

// The whole tensor as f32, in storage order (torch order, row-major).
Result<std::vector<float>> DequantizeTensor(const TensorInfo& tensor);

}  // namespace lserve
