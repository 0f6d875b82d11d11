// Fast CPU merge kernel: same contract and params as kernels/ref/merge.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/merge.h"

namespace lserve {

void MergeStatesCpu(const MergeStatesParams& p, ThreadPool& pool);

}  // namespace lserve
