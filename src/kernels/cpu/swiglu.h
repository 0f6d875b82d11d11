// Fast CPU swiglu kernel: same contract and params as kernels/ref/swiglu.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/swiglu.h"

namespace lserve {

void SwigluCpu(const SwigluParams& p, ThreadPool& pool);

}  // namespace lserve
