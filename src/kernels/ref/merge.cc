#include "kernels/ref/merge.h"

namespace lserve {

void MergeStatesRef(const MergeStatesParams& p) {
  for (int64_t r = 0; r < p.n; ++r) {
    float* out = p.v_out + r * p.head_dim;
    const float* a = p.v_a + r * p.head_dim;
    const float* b = p.v_b + r * p.head_dim;
    float lse = p.lse_a[r];
    const float lse_b = p.lse_b[r];
    // out may alias b: start from a only when that is safe, else merge a into b.
    if (out == b) {
      float lse_out = lse_b;
      MergeStateInPlace(out, &lse_out, a, lse, p.head_dim);
      lse = lse_out;
    } else {
      if (out != a) {
        for (int64_t d = 0; d < p.head_dim; ++d) out[d] = lse == -INFINITY ? 0.0f : a[d];
      }
      MergeStateInPlace(out, &lse, b, lse_b, p.head_dim);
    }
    if (p.lse_out != nullptr) p.lse_out[r] = lse;
  }
}

}  // namespace lserve
