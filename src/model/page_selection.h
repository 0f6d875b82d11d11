// The decode page selection of retrieval heads across steps (DESIGN.md §4
// "Decode", LSERVE.md §4-§5): which decode rows of a step run the page
// selector, which reuse the pages chosen at an earlier step, and the lists
// kept per sequence between steps.
//
// Per decoding sequence of length n (the current token included), with P the
// page size and K = token_budget / P:
//   n <= token_budget                 dense: every page (no selection)
//   else, select when                 the sequence had no valid selection (its
//                                     first step past the budget, or a step
//                                     that does not continue the last one),
//                                     or `select_interval` steps have used the
//                                     last selection, or the newest page
//                                     changed since it was made
//   else                              reuse the lists of the last selection.
// The selector itself always includes the newest page, so a reused list still
// holds it: the newest page is current at every step (the LSERVE.md §5 hazard
// of a frozen newest page cannot arise), and reuse never spans a page
// boundary.
//
// Lists live on the backend, one block per sequence: [layers, kv_heads, K]
// int32 page-table indices and [layers, kv_heads] int64 counts, written by
// the selector's step buffer (ForwardScratch::selected) and copied back into
// it on reuse. Sequences that left the KV cache are dropped at the next Plan.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "kvcache/batch_plan.h"
#include "kvcache/kv_cache.h"

namespace lserve {

struct SelectionPolicy {
  int64_t page_size = 64;
  int64_t token_budget = 4096;
  int64_t select_interval = 4;
  int64_t max_pages() const { return token_budget / page_size; }  // K
};

// What a decode row of the step does with the selector.
struct SelectionAction {
  int64_t step = 0;     // index into BatchPlan::steps (= sequence index of the step)
  int64_t seq_id = 0;
  bool select = false;  // run the selector and keep its lists; false: reuse the kept lists
};

class PageSelectionStore {
 public:
  // The actions of this step's decode rows past the budget, in plan order,
  // and the bookkeeping for the next step. Allocates the lists of sequences
  // that need them.
  Result<std::vector<SelectionAction>> Plan(const BatchPlan& plan, const KvCacheManager& kv,
                                            const SelectionPolicy& policy, Backend& backend, int64_t layers,
                                            int64_t kv_heads);

  // The kept lists of a sequence planned in this step. Precondition: Plan
  // returned an action for seq_id.
  const DeviceBuffer& pages(int64_t seq_id) const { return entries_.at(seq_id).pages; }
  const DeviceBuffer& counts(int64_t seq_id) const { return entries_.at(seq_id).counts; }
  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  int64_t total_selections() const { return total_selections_; }

 private:
  struct Entry {
    DeviceBuffer pages;   // [layers, kv_heads, K] int32
    DeviceBuffer counts;  // [layers, kv_heads] int64
    bool valid = false;
    int64_t next_len = -1;     // start position of a decode step that continues the last one
    int64_t newest_page = -1;  // newest page when the lists were made
    int64_t uses = 0;          // steps that used the lists
  };
  std::unordered_map<int64_t, Entry> entries_;
  int64_t total_selections_ = 0;
};

}  // namespace lserve
