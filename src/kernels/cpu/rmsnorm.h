// Fast CPU rmsnorm kernel: same contract and params as kernels/ref/rmsnorm.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/rmsnorm.h"

namespace lserve {

void RmsNormCpu(const RmsNormParams& p, ThreadPool& pool);

}  // namespace lserve
