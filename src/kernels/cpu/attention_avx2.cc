// The AVX2 instantiation of the attention kernel body (attention_impl.h) over
// the AVX2 primitives (attention_ops_avx2.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/attention_ops_avx2.h"
#include "kernels/ref/sparse_attention.h"

#pragma GCC target("avx2,fma,f16c")

#include "kernels/cpu/attention_impl.h"

namespace lserve::cpu_detail {

void RunAttentionTaskAvx2(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                          const StateOutput& out, AttentionScratch& scratch) {
  RunAttentionTask<Avx2AttentionOps>(p, plan, t, out, scratch);
}

}  // namespace lserve::cpu_detail
