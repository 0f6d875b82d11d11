#include "kernels/cpu/embedding.h"

#include "core/check.h"
#include "formats/gguf_quant.h"
#include "kernels/cpu/simd_avx2.h"

namespace lserve {

// Rows are independent: threaded over ids, each row dequantized with the
// same float operations as the reference (bit-identical output).
void EmbeddingCpu(const EmbeddingParams& p, ThreadPool& pool) {
  LSERVE_CHECK(EmbeddingSupports(p.dtype, p.hidden));
  const auto row_bytes = DTypeBytesFor(p.dtype, static_cast<uint64_t>(p.hidden));
  LSERVE_CHECK(row_bytes.has_value());
  const auto* table = static_cast<const uint8_t*>(p.table);
  const bool simd = cpu_detail::CpuHasAvx2Fma();
  const int64_t max_chunks = std::max<int64_t>(1, p.n * p.hidden / 4096);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t id = p.ids[i];
      LSERVE_CHECK(id >= 0 && id < p.vocab);
      if (simd) {
        cpu_detail::DequantizeRowsAvx2(p.dtype, table, static_cast<size_t>(*row_bytes), p.hidden, id, id + 1,
                                       p.out + i * p.hidden);
      } else {
        const Status st = DequantizeRow(p.dtype, table + static_cast<uint64_t>(id) * *row_bytes, p.hidden,
                                        p.out + i * p.hidden);
        LSERVE_CHECK(st.ok());
      }
    }
  });
}

}  // namespace lserve
