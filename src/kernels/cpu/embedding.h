// Fast CPU embedding kernel: same contract and params as kernels/ref/embedding.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/embedding.h"

namespace lserve {

void EmbeddingCpu(const EmbeddingParams& p, ThreadPool& pool);

}  // namespace lserve
