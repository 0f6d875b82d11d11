#include "kernels/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/simd_avx2.h"
#include "kernels/ref/weight_element.h"

namespace lserve {

void RmsNormCpu(const RmsNormParams& p, ThreadPool& pool) {
  LSERVE_CHECK(IsPlainFloatDType(p.weight_dtype));
  const bool simd = cpu_detail::CpuHasAvx2Fma();
  const int64_t max_chunks = std::max<int64_t>(1, p.n * p.dim / 8192);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* x = p.x + r * p.dim;
      float* out = p.out + r * p.dim;
      float sum_sq;
      if (simd) {
        sum_sq = cpu_detail::SumSquaresAvx2(x, p.dim);
      } else {
        sum_sq = 0.0f;
        for (int64_t i = 0; i < p.dim; ++i) sum_sq += x[i] * x[i];
      }
      const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(p.dim) + p.eps);
      if (simd) {
        cpu_detail::ScaleByWeightAvx2(x, p.weight, p.weight_dtype, inv_rms, out, p.dim);
      } else {
        for (int64_t i = 0; i < p.dim; ++i) out[i] = LoadPlainFloat(p.weight, p.weight_dtype, i) * (x[i] * inv_rms);
      }
    }
  });
}

}  // namespace lserve
