#include "kernels/cpu/page_selector.h"

#include <vector>

#include "core/check.h"

namespace lserve {

void SelectPagesCpu(const PageSelectorParams& p, ThreadPool& pool) {
  LSERVE_CHECK(p.n_kv_heads > 0 && p.n_q_heads % p.n_kv_heads == 0 && p.page_size > 0 &&
               p.logical_page_size > 0 && p.page_size % p.logical_page_size == 0 && p.max_pages >= 0);
  pool.ParallelFor(p.n_seqs * p.n_kv_heads, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    std::vector<int32_t> order;
    for (int64_t i = begin; i < end; ++i) SelectPagesOfHead(p, i / p.n_kv_heads, i % p.n_kv_heads, scores, order);
  });
}

}  // namespace lserve
