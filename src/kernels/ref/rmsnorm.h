// RMSNorm as HF Llama computes it, in f32:
//   out[r, :] = weight * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps))
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lserve {

struct RmsNormParams {
  const float* x;        // [n, dim] f32
  const void* weight;    // [dim] of weight_dtype (F32, F16 or BF16)
  DType weight_dtype;
  float* out;            // [n, dim] f32; may alias x (then normalised in place)
  int64_t n, dim;
  float eps;
};

void RmsNormRef(const RmsNormParams& p);

}  // namespace lserve
