// Linear on the CPU, two regimes chosen by the number of input rows m
// (ChooseLinearAlgo):
// - few rows (decode): a GEMV that streams the weights once in their stored
//   format, converting each 32-element chunk in registers and reusing it for
//   up to 4 rows of x, threaded over output rows;
// - many rows (prefill): each thread takes a slice of output rows,
//   dequantizes tiles of up to kGemmTileRows weight rows to f32 (f32 weights
//   are used in place) and calls single-threaded OpenBLAS sgemm on the tile.
// Both accumulate in f32; only the summation order differs from LinearRef.
#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "formats/gguf_quant.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/weight_element.h"

namespace lserve {
namespace {

// Weight rows per dequantized tile: large enough that sgemm's packing of x
// is amortised, small enough to stay in L2/L3 (256 x 1536 f32 = 1.5 MiB).
constexpr int64_t kGemmTileRows = 256;
// GEMV: output rows per chunk handed to a thread, at least.
constexpr int64_t kGemvMinRowsPerChunk = 16;

// Our pool provides the threads; OpenBLAS runs in the calling thread.
void UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void GemvRowsScalar(const LinearParams& p, size_t row_bytes, int64_t j0, int64_t j1) {
  std::vector<float> w_row(p.k);
  const auto* w = static_cast<const uint8_t*>(p.w);
  for (int64_t j = j0; j < j1; ++j) {
    const Status st = DequantizeRow(p.w_dtype, w + static_cast<size_t>(j) * row_bytes, p.k, w_row.data());
    LSERVE_CHECK(st.ok());
    for (int64_t i = 0; i < p.m; ++i) {
      const float* x = p.x + i * p.k;
      float acc = 0.0f;
      for (int64_t c = 0; c < p.k; ++c) acc += x[c] * w_row[c];
      p.y[i * p.n + j] = acc;
    }
  }
}

void DequantizeRows(const LinearParams& p, size_t row_bytes, int64_t j0, int64_t j1, float* dst) {
  const auto* w = static_cast<const uint8_t*>(p.w);
  if (cpu_detail::CpuHasAvx2Fma()) {
    cpu_detail::DequantizeRowsAvx2(p.w_dtype, w, row_bytes, p.k, j0, j1, dst);
    return;
  }
  for (int64_t j = j0; j < j1; ++j) {
    const Status st = DequantizeRow(p.w_dtype, w + static_cast<size_t>(j) * row_bytes, p.k, dst + (j - j0) * p.k);
    LSERVE_CHECK(st.ok());
  }
}

// y[:, j0:j1] = x w[j0:j1]^T through sgemm.
void GemmRows(const LinearParams& p, size_t row_bytes, int64_t j0, int64_t j1) {
  const int kk = static_cast<int>(p.k);
  if (p.w_dtype == DType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.m), static_cast<int>(j1 - j0), kk, 1.0f,
                p.x, kk, static_cast<const float*>(p.w) + j0 * p.k, kk, 0.0f, p.y + j0, static_cast<int>(p.n));
    return;
  }
  // Near-equal tiles of at most kGemmTileRows rows.
  const int64_t n_tiles = (j1 - j0 + kGemmTileRows - 1) / kGemmTileRows;
  const int64_t tile_rows = (j1 - j0 + n_tiles - 1) / n_tiles;
  thread_local std::vector<float> tile;
  tile.resize(static_cast<size_t>(tile_rows * p.k));
  for (int64_t t0 = j0; t0 < j1; t0 += tile_rows) {
    const int64_t t1 = std::min(j1, t0 + tile_rows);
    DequantizeRows(p, row_bytes, t0, t1, tile.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.m), static_cast<int>(t1 - t0), kk, 1.0f,
                p.x, kk, tile.data(), kk, 0.0f, p.y + t0, static_cast<int>(p.n));
  }
}

void AddBias(const LinearParams& p, int64_t j0, int64_t j1) {
  if (p.bias == nullptr) return;
  for (int64_t i = 0; i < p.m; ++i) {
    float* y = p.y + i * p.n;
    for (int64_t j = j0; j < j1; ++j) y[j] += LoadPlainFloat(p.bias, p.bias_dtype, j);
  }
}

}  // namespace

// The smallest m for which dequantize + sgemm beats the GEMV. Measured with
// bench/kernels on the demo model's shapes (n, k in {192, 576, 1536}), one
// and two threads, on the AMD Zen 3 development machine and an Intel Xeon
// (OpenBLAS Haswell kernels): the 4-bit types' GEMV pays the most per
// element to convert, so sgemm wins first for them; plain f16/bf16 rows of
// short k convert cheaply and keep the GEMV longer.
int64_t GemmMinRows(int64_t k, DType w_dtype) {
  switch (w_dtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ6_K: return 8;
    case DType::kQ8_0: return 12;
    case DType::kF32: return 16;
    default: return k >= 1024 ? 16 : 24;  // F16, BF16
  }
}

LinearAlgo ChooseLinearAlgo(int64_t m, int64_t n, int64_t k, DType w_dtype) {
  return m >= GemmMinRows(k, w_dtype) ? LinearAlgo::kGemm : LinearAlgo::kGemv;
}

void LinearCpu(const LinearParams& p, ThreadPool& pool) {
  LinearCpuWithAlgo(p, ChooseLinearAlgo(p.m, p.n, p.k, p.w_dtype), pool);
}

void LinearCpuWithAlgo(const LinearParams& p, LinearAlgo algo, ThreadPool& pool) {
  LSERVE_CHECK(LinearSupports(p.w_dtype, p.k));
  LSERVE_CHECK(p.bias == nullptr || LinearSupportsBias(p.bias_dtype));
  if (p.m <= 0 || p.n <= 0) return;
  const auto row_bytes_opt = DTypeBytesFor(p.w_dtype, static_cast<uint64_t>(p.k));
  LSERVE_CHECK(row_bytes_opt.has_value());
  const size_t row_bytes = static_cast<size_t>(*row_bytes_opt);

  if (algo == LinearAlgo::kGemm) {
    UseSingleThreadedBlas();
    // One slice of output rows per thread, at least 16 rows.
    const int64_t max_chunks = std::max<int64_t>(1, p.n / 16);
    pool.ParallelFor(p.n, max_chunks, [&](int64_t j0, int64_t j1) {
      GemmRows(p, row_bytes, j0, j1);
      AddBias(p, j0, j1);
    });
    return;
  }

  const bool simd = cpu_detail::CpuHasAvx2Fma();
  const int64_t max_chunks = std::max<int64_t>(1, p.n / kGemvMinRowsPerChunk);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t j0, int64_t j1) {
    if (simd) {
      cpu_detail::GemvRowsAvx2(p.w_dtype, static_cast<const uint8_t*>(p.w), row_bytes, p.k, p.x, p.m, j0, j1, p.y, p.n);
    } else {
      GemvRowsScalar(p, row_bytes, j0, j1);
    }
    AddBias(p, j0, j1);
  });
}

}  // namespace lserve
