#include "kernels/ref/linear.h"

#include <vector>

#include "core/check.h"
#include "formats/gguf_quant.h"
#include "kernels/ref/weight_element.h"

namespace lserve {

bool LinearSupports(DType w_dtype, int64_t k) {
  return k > 0 && CanDequantize(w_dtype) && k % DTypeBlockElems(w_dtype) == 0;
}

bool LinearSupportsBias(DType bias_dtype) { return IsPlainFloatDType(bias_dtype); }

void LinearRef(const LinearParams& p) {
  LSERVE_CHECK(LinearSupports(p.w_dtype, p.k));
  LSERVE_CHECK(p.bias == nullptr || LinearSupportsBias(p.bias_dtype));
  const auto row_bytes = DTypeBytesFor(p.w_dtype, static_cast<uint64_t>(p.k));
  LSERVE_CHECK(row_bytes.has_value());
  const auto* w = static_cast<const uint8_t*>(p.w);
  std::vector<float> w_row(p.k);
  for (int64_t j = 0; j < p.n; ++j) {
    const Status st = DequantizeRow(p.w_dtype, w + static_cast<uint64_t>(j) * *row_bytes, p.k, w_row.data());
    LSERVE_CHECK(st.ok());
    const float b = p.bias != nullptr ? LoadPlainFloat(p.bias, p.bias_dtype, j) : 0.0f;
    for (int64_t i = 0; i < p.m; ++i) {
      const float* x = p.x + i * p.k;
      float acc = 0.0f;
      for (int64_t c = 0; c < p.k; ++c) acc += x[c] * w_row[c];
      p.y[i * p.n + j] = acc + b;
    }
  }
}

}  // namespace lserve
