#include "kernels/cpu/swiglu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/simd_avx2.h"

namespace lserve {

void SwigluCpu(const SwigluParams& p, ThreadPool& pool) {
  const int64_t total = p.m * p.inter;
  const bool simd = cpu_detail::CpuHasAvx2Fma();
  // Chunks of at least 4096 elements, cut at multiples of 8 so the vector
  // loop covers all but the very end.
  constexpr int64_t kGrain = 4096;
  const int64_t units = (total + kGrain - 1) / kGrain;
  pool.ParallelFor(units, [&](int64_t u0, int64_t u1) {
    const int64_t b = u0 * kGrain, e = std::min(total, u1 * kGrain);
    if (simd) {
      cpu_detail::SwigluAvx2(p.gate + b, p.up + b, p.out + b, e - b);
    } else {
      for (int64_t i = b; i < e; ++i) {
        const float g = p.gate[i];
        p.out[i] = g / (1.0f + std::exp(-g)) * p.up[i];
      }
    }
  });
}

}  // namespace lserve
