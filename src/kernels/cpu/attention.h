// Fast CPU attention kernel: same contract and params as kernels/ref/attention.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/attention.h"

namespace lserve {

void PagedAttentionCpu(const PagedAttentionParams& p, ThreadPool& pool);

}  // namespace lserve
