#include "kernels/ref/rope.h"

#include <vector>

#include "core/check.h"

namespace lserve {

void RopeRef(const RopeParams& p) {
  LSERVE_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0);
  const int64_t half = p.head_dim / 2;
  std::vector<float> cos_row(half), sin_row(half);
  for (int64_t t = 0; t < p.n; ++t) {
    RopeCosSinRow(p.positions[t], p.inv_freq, half, p.attention_scaling, cos_row.data(), sin_row.data());
    RopeRotateToken(p, t, cos_row.data(), sin_row.data());
  }
}

}  // namespace lserve
