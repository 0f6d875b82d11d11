#include "kernels/cpu/merge.h"

#include <algorithm>

namespace lserve {

void MergeStatesCpu(const MergeStatesParams& p, ThreadPool& pool) {
  const int64_t max_chunks = std::max<int64_t>(1, p.n * p.head_dim / 4096);
  pool.ParallelFor(p.n, max_chunks, [&](int64_t b, int64_t e) {
    MergeStatesParams part = p;
    part.n = e - b;
    part.v_a = p.v_a + b * p.head_dim;
    part.v_b = p.v_b + b * p.head_dim;
    part.v_out = p.v_out + b * p.head_dim;
    part.lse_a = p.lse_a + b;
    part.lse_b = p.lse_b + b;
    part.lse_out = p.lse_out != nullptr ? p.lse_out + b : nullptr;
    MergeStatesRef(part);
  });
}

void MergeSplitPartials(const float* part_o, const float* part_lse, int64_t n_splits, int64_t items, int64_t d,
                        float* out, float* lse, ThreadPool& pool) {
  pool.ParallelFor(items, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* o = out + i * d;
      float state_lse = part_lse[i];
      std::copy(part_o + i * d, part_o + (i + 1) * d, o);
      for (int64_t sp = 1; sp < n_splits; ++sp) {
        const int64_t at = sp * items + i;
        MergeStateInPlace(o, &state_lse, part_o + at * d, part_lse[at], d);
      }
      if (lse != nullptr) lse[i] = state_lse;
    }
  });
}

}  // namespace lserve
