#include "kernels/ref/rmsnorm.h"

#include <cmath>

#include "kernels/ref/weight_element.h"

namespace lserve {

void RmsNormRef(const RmsNormParams& p) {
  LSERVE_CHECK(IsPlainFloatDType(p.weight_dtype));
  for (int64_t r = 0; r < p.n; ++r) {
    const float* x = p.x + r * p.dim;
    float* out = p.out + r * p.dim;
    float sum_sq = 0.0f;
    for (int64_t i = 0; i < p.dim; ++i) sum_sq += x[i] * x[i];
    const float mean_sq = sum_sq / static_cast<float>(p.dim);
    const float inv_rms = 1.0f / std::sqrt(mean_sq + p.eps);
    for (int64_t i = 0; i < p.dim; ++i) out[i] = LoadPlainFloat(p.weight, p.weight_dtype, i) * (x[i] * inv_rms);
  }
}

}  // namespace lserve
