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

}  // namespace lserve
