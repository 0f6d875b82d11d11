// Fast CPU merge kernel: same contract and params as kernels/ref/merge.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/merge.h"

namespace lserve {

void MergeStatesCpu(const MergeStatesParams& p, ThreadPool& pool);

// Split-KV epilogue shared by the attention kernels: `items` partial states
// per split, laid out split-major (part_o [n_splits, items, d], part_lse
// [n_splits, items]), merged in split order into out [items, d] and, when
// non-null, lse [items].
void MergeSplitPartials(const float* part_o, const float* part_lse, int64_t n_splits, int64_t items, int64_t d,
                        float* out, float* lse, ThreadPool& pool);

}  // namespace lserve
