#include "model/page_selection.h"

#include <iterator>

namespace lserve {

Result<std::vector<SelectionAction>> PageSelectionStore::Plan(const BatchPlan& plan, const KvCacheManager& kv,
                                                              const SelectionPolicy& policy, Backend& backend,
                                                              int64_t layers, int64_t kv_heads) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = kv.Contains(it->first) ? std::next(it) : entries_.erase(it);
  }
  std::vector<SelectionAction> actions;
  const int64_t k = policy.max_pages();
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const SequenceStep& step = plan.steps[s];
    const int64_t len = step.start_pos + static_cast<int64_t>(step.tokens.size());
    if (!step.is_decode || len <= policy.token_budget || k < 1) {
      // Dense rows; a later step past the budget starts with a fresh selection.
      auto it = entries_.find(step.seq_id);
      if (it != entries_.end()) it->second.valid = false;
      continue;
    }
    Entry& e = entries_[step.seq_id];
    if (e.pages.data() == nullptr) {
      const uint64_t lists = static_cast<uint64_t>(layers * kv_heads);
      LSERVE_ASSIGN_OR_RETURN(e.pages, backend.Allocate(lists * static_cast<uint64_t>(k) * sizeof(int32_t)));
      LSERVE_ASSIGN_OR_RETURN(e.counts, backend.Allocate(lists * sizeof(int64_t)));
    }
    const int64_t newest = (len - 1) / policy.page_size;
    const bool select = !e.valid || e.next_len != step.start_pos || e.uses >= policy.select_interval ||
                        e.newest_page != newest;
    if (select) {
      e.valid = true;
      e.uses = 0;
      e.newest_page = newest;
      ++total_selections_;
    }
    ++e.uses;
    e.next_len = len;
    actions.push_back({static_cast<int64_t>(s), step.seq_id, select});
  }
  return actions;
}

}  // namespace lserve
