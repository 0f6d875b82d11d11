// Fast CPU sparse attention: same contract and params as
// kernels/ref/sparse_attention.h (which documents the shapes and key sets),
// threaded over the pool, AVX2/FMA where the machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/sparse_attention.h"

namespace lserve {

void SparseAttentionCpu(const SparseAttentionParams& p, ThreadPool& pool);

}  // namespace lserve
