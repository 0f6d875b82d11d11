// Reading one element of a plain-typed (F32 / F16 / BF16) vector, shared by
// the reference kernels whose small parameters (norm weights, biases) may be
// stored in any of these types.
#pragma once

#include <cstdint>

#include "core/check.h"
#include "core/dtype.h"

namespace lserve {

inline bool IsPlainFloatDType(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

inline float LoadPlainFloat(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(data)[i];
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(data)[i]);
    case DType::kBF16: return BF16ToF32(static_cast<const uint16_t*>(data)[i]);
    default: LSERVE_CHECK(false && "not a plain float dtype"); return 0.0f;
  }
}

}  // namespace lserve
