// Linear layer: y = x w^T + bias, f32 activations, weights in their stored
// dtype, f32 accumulation.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lserve {

struct LinearParams {
  const float* x;        // [m, k] f32
  const void* w;         // [n, k] of w_dtype: row j holds the k inputs of output j; quantized
                         // types store each row as k / block_elems whole blocks
  DType w_dtype;         // F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K or Q6_K (LinearSupports)
  const void* bias;      // [n] of bias_dtype (F32, F16 or BF16), or null
  DType bias_dtype;
  float* y;              // [m, n] f32; must not alias x
  int64_t m, n, k;
};

// True when the linear kernels accept weights of `w_dtype` with rows of k
// elements (k a whole number of blocks for the quantized types).
bool LinearSupports(DType w_dtype, int64_t k);
// True for the bias dtypes the kernels accept (F32, F16, BF16).
bool LinearSupportsBias(DType bias_dtype);

void LinearRef(const LinearParams& p);

}  // namespace lserve
