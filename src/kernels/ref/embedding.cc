#include "kernels/ref/embedding.h"

#include "core/check.h"
#include "formats/gguf_quant.h"

namespace lserve {

bool EmbeddingSupports(DType dtype, int64_t hidden) {
  return hidden > 0 && CanDequantize(dtype) && hidden % DTypeBlockElems(dtype) == 0;
}

void EmbeddingRef(const EmbeddingParams& p) {
  LSERVE_CHECK(EmbeddingSupports(p.dtype, p.hidden));
  const auto row_bytes = DTypeBytesFor(p.dtype, static_cast<uint64_t>(p.hidden));
  LSERVE_CHECK(row_bytes.has_value());
  const auto* table = static_cast<const uint8_t*>(p.table);
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t id = p.ids[i];
    LSERVE_CHECK(id >= 0 && id < p.vocab);
    const Status st = DequantizeRow(p.dtype, table + static_cast<uint64_t>(id) * *row_bytes, p.hidden,
                                    p.out + i * p.hidden);
    LSERVE_CHECK(st.ok());
  }
}

}  // namespace lserve
