// Fast CPU kv_append kernel: same contract and params as kernels/ref/kv_append.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/kv_append.h"

namespace lserve {

void KvAppendCpu(const KvAppendParams& p, ThreadPool& pool);

}  // namespace lserve
