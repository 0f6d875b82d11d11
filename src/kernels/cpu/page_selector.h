// Fast CPU page selector: same contract and params as kernels/ref/page_selector.h
// (which documents the shapes), threaded over (sequence, KV head) with the
// reference's arithmetic per list, so the selection is bit-identical.
#pragma once

#include "core/thread_pool.h"
#include "kernels/ref/page_selector.h"

namespace lserve {

void SelectPagesCpu(const PageSelectorParams& p, ThreadPool& pool);

}  // namespace lserve
