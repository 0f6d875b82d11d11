// Fast CPU rope kernel: same contract and params as kernels/ref/rope.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/rope.h"

namespace lserve {

void RopeCpu(const RopeParams& p, ThreadPool& pool);

}  // namespace lserve
