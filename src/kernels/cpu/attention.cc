// Paged attention on the CPU: dense causal attention is the sparse kernel
// (sparse_attention.cc, attention_impl.h) with every KV head a retrieval head
// of a pool of n_kv_heads slots and no page selection, so both kernels share
// one item loop, one set of vector primitives, and one rule for splitting the
// keys (which keeps a row's bits independent of the batch and the threads).
// This file also holds the portable scalar primitives and their instantiation.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/attention_impl.h"
#include "kernels/cpu/sparse_attention.h"

namespace lserve {
namespace cpu_detail {
namespace {

// The Ops policy of attention_impl.h in portable C++ (attention_ops_avx2.h
// documents each primitive).
struct ScalarAttentionOps {
  static void Scores(const float* q, int64_t heads, const float* k, int64_t n, int64_t d, float scale, float* s,
                     int64_t s_stride) {
    for (int64_t g = 0; g < heads; ++g) {
      for (int64_t j = 0; j < n; ++j) {
        float dot = 0.0f;
        for (int64_t c = 0; c < d; ++c) dot += q[g * d + c] * k[j * d + c];
        s[g * s_stride + j] = dot * scale;
      }
    }
  }
  static float Max(const float* s, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
    return m;
  }
  static float ExpSubSum(float* s, int64_t n, float m) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = std::exp(s[j] - m);
      sum += s[j];
    }
    return sum;
  }
  static void AccumulatePV(float* acc, const float* factor, const float* p, int64_t p_stride, int64_t heads,
                           const float* v, int64_t n, int64_t d) {
    for (int64_t g = 0; g < heads; ++g) {
      float* a = acc + g * d;
      for (int64_t c = 0; c < d; ++c) a[c] *= factor[g];
      for (int64_t j = 0; j < n; ++j) {
        const float pj = p[g * p_stride + j];
        for (int64_t c = 0; c < d; ++c) a[c] += pj * v[j * d + c];
      }
    }
  }
};

}  // namespace

void RunAttentionTaskScalar(const SparseAttentionParams& p, const AttentionPlan& plan, const AttentionTask& t,
                            const StateOutput& out, AttentionScratch& scratch) {
  RunAttentionTask<ScalarAttentionOps>(p, plan, t, out, scratch);
}

}  // namespace cpu_detail

void PagedAttentionCpu(const PagedAttentionParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0);
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    LSERVE_CHECK((p.page_table_start[s + 1] - p.page_table_start[s]) * p.page_size >= p.kv_len[s]);
  }
  const std::vector<int8_t> modes(static_cast<size_t>(p.n_kv_heads), kHeadModeRetrieval);
  std::vector<int32_t> slots(static_cast<size_t>(p.n_kv_heads));
  std::iota(slots.begin(), slots.end(), 0);
  SparseAttentionParams sp{};
  sp.q = p.q;
  sp.out = p.out;
  sp.lse = p.lse;
  sp.n_q_heads = p.n_q_heads;
  sp.n_kv_heads = p.n_kv_heads;
  sp.head_dim = p.head_dim;
  sp.scale = p.scale;
  sp.n_seqs = p.n_seqs;
  sp.q_start = p.q_start;
  sp.q_pos0 = p.q_pos0;
  sp.kv_len = p.kv_len;
  sp.page_size = p.page_size;
  sp.head_mode = modes.data();
  sp.pool_slot = slots.data();
  sp.page_table_r = p.page_table;
  sp.page_table_start_r = p.page_table_start;
  sp.k_cache_r = p.k_cache;
  sp.v_cache_r = p.v_cache;
  sp.n_retrieval_heads = p.n_kv_heads;
  SparseAttentionCpu(sp, pool);
}

}  // namespace lserve
