#include "kernels/ref/swiglu.h"

#include <cmath>

namespace lserve {

void SwigluRef(const SwigluParams& p) {
  const int64_t total = p.m * p.inter;
  for (int64_t i = 0; i < total; ++i) {
    const float g = p.gate[i];
    const float silu = g / (1.0f + std::exp(-g));
    p.out[i] = silu * p.up[i];
  }
}

}  // namespace lserve
