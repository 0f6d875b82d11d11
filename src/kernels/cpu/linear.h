// Fast CPU linear kernel: same contract and params as kernels/ref/linear.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/linear.h"

namespace lserve {

void LinearCpu(const LinearParams& p, ThreadPool& pool);

}  // namespace lserve
