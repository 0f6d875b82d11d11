// Linear on the CPU, batch-invariant: every path computes output (i, j) with
// the same float operations in the same order (linear_avx2.cc, "The dot
// product"), so y[i, :] depends on x[i, :] and w only, never on m, on the
// other rows of the call, on the thread count or on the path taken. The two
// paths (ChooseLinearAlgo) differ only in speed:
// - kGemv streams the weights in their stored format, converting each chunk
//   in registers for every group of up to 4 rows of x (few rows: decode);
// - kGemm converts panels of weight rows to f32 once and applies each panel
//   to all rows of x in register tiles (many rows: prefill).
// Threads split the output columns (weight rows); each output element is
// computed whole by one thread. Without AVX2/FMA both run one portable
// scalar dot product per element (sequential in k), invariant as well.
#include "kernels/cpu/linear.h"

#include <algorithm>
#include <vector>

#include "core/check.h"
#include "formats/gguf_quant.h"
#include "kernels/cpu/linear_avx2.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/weight_element.h"

namespace lserve {
namespace {

// GEMV: output columns per chunk handed to a thread, at least.
constexpr int64_t kGemvMinColumnsPerChunk = 16;
// Reordering x: elements per chunk handed to a thread, at least.
constexpr int64_t kLaneOrderMinElemsPerChunk = 1 << 16;

// Portable path: each weight row dequantized once, then one sequential dot
// product per row of x.
void LinearColumnsScalar(const LinearParams& p, size_t row_bytes, int64_t j0, int64_t j1) {
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

void AddBias(const LinearParams& p, int64_t j0, int64_t j1) {
  if (p.bias == nullptr) return;
  for (int64_t i = 0; i < p.m; ++i) {
    float* y = p.y + i * p.n;
    for (int64_t j = j0; j < j1; ++j) y[j] += LoadPlainFloat(p.bias, p.bias_dtype, j);
  }
}

// Output columns per task of the GEMM: whole panels, as many tasks as
// threads or a multiple (so the threads get equal shares), each at most a
// panel of LinearPanelColumns(k). A pure performance choice: the bits of an
// output element do not depend on the columns computed beside it.
int64_t GemmTaskColumns(int64_t n, int64_t k, int threads) {
  const int64_t max_cols = cpu_detail::LinearPanelColumns(k);
  int64_t tasks = (n + max_cols - 1) / max_cols;
  tasks = (tasks + threads - 1) / threads * threads;
  const int64_t cols = (n + tasks - 1) / tasks;
  return std::min(max_cols, (cols + 2) / 3 * 3);
}

// The smallest m for which the panel GEMM beats the GEMV, measured with
// bench/kernels on the demo model's shapes (n, k in {192, 576, 1536}, and
// n = 49152): the GEMV converts the weights once per 4 rows of x, the GEMM
// once per call plus a pass over an f32 panel in L2, so the types that are
// costly to convert switch first; f16 converts in one instruction and keeps
// the GEMV longest. (Q8_0's GEMV stays within ~15% of the GEMM up to m = 11.)
int64_t GemmMinRows(int64_t k, DType w_dtype) {
  switch (w_dtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ6_K: return 6;
    case DType::kF32: return 4;
    case DType::kF16: return k >= 1024 ? 16 : 12;
    default: return 12;  // Q8_0, BF16
  }
}

}  // namespace

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
  const auto* w = static_cast<const uint8_t*>(p.w);

  if (!cpu_detail::CpuHasAvx2Fma()) {
    const int64_t max_chunks = std::max<int64_t>(1, p.n / kGemvMinColumnsPerChunk);
    pool.ParallelFor(p.n, max_chunks, [&](int64_t j0, int64_t j1) {
      LinearColumnsScalar(p, row_bytes, j0, j1);
      AddBias(p, j0, j1);
    });
    return;
  }

  // x in the dot product's order, once per call for all threads.
  const float* x = p.x;
  if (cpu_detail::LinearLaneOrder(p.w_dtype)) {
    float* lanes = cpu_detail::LinearScratchX(p.m * p.k);
    const int64_t max_chunks = std::max<int64_t>(1, p.m * p.k / kLaneOrderMinElemsPerChunk);
    pool.ParallelFor(p.m, max_chunks, [&](int64_t i0, int64_t i1) {
      cpu_detail::LaneOrderAvx2(p.x + i0 * p.k, i1 - i0, p.k, lanes + i0 * p.k);
    });
    x = lanes;
  }

  if (algo == LinearAlgo::kGemm) {
    const int64_t cols = GemmTaskColumns(p.n, p.k, pool.size());
    const int64_t tasks = (p.n + cols - 1) / cols;
    pool.ParallelFor(tasks, tasks, [&](int64_t t0, int64_t t1) {
      const int64_t j0 = t0 * cols, j1 = std::min(p.n, t1 * cols);
      cpu_detail::GemmColumnsAvx2(p.w_dtype, w, row_bytes, p.k, x, p.m, j0, j1, p.y, p.n);
      AddBias(p, j0, j1);
    });
    return;
  }

  const int64_t max_chunks = std::max<int64_t>(1, p.n / kGemvMinColumnsPerChunk);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t j0, int64_t j1) {
    cpu_detail::GemvColumnsAvx2(p.w_dtype, w, row_bytes, p.k, x, p.m, j0, j1, p.y, p.n);
    AddBias(p, j0, j1);
  });
}

}  // namespace lserve
