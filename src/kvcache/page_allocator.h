// PageAllocator: the physical pages of one KV pool (retrieval or streaming),
// handed out by id. Pure bookkeeping: it never touches K/V memory; the model
// owns one storage array per layer and indexes it with these ids.
//
// Every page is either free (reference count 0, on the free list exactly once)
// or used (reference count >= 1, not on the free list). A page's count is the
// number of sequences that hold it; today one, more once prefixes are shared.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace lserve {

class PageAllocator {
 public:
  // Precondition: 0 <= num_pages (page ids are int32, so <= INT32_MAX).
  // All pages start free.
  explicit PageAllocator(int32_t num_pages);

  int32_t total_pages() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t free_pages() const { return static_cast<int32_t>(free_list_.size()); }
  int32_t used_pages() const { return used_; }

  // Precondition: none. Takes a free page and gives it reference count 1.
  // ResourceExhausted when no page is free (nothing changes then).
  // The most recently returned page is handed out first.
  Result<int32_t> Allocate();

  // Precondition: `page` is in use (0 <= page < total, count >= 1).
  // Adds one holder. InvalidArgument when the precondition does not hold.
  Status Ref(int32_t page);

  // Precondition: `page` is in use. Drops one holder; at count 0 the page is
  // free again. InvalidArgument when the precondition does not hold (a double
  // free never corrupts the free list).
  Status Unref(int32_t page);

  // Precondition: 0 <= page < total_pages(). 0 for a free page.
  int32_t ref_count(int32_t page) const { return ref_counts_[static_cast<size_t>(page)]; }
  bool is_free(int32_t page) const { return ref_count(page) == 0; }
  bool valid(int32_t page) const { return page >= 0 && page < total_pages(); }

  // free + used == total; every free-list entry is a valid page with count 0
  // and appears once; every page with count 0 is on the free list; no count is
  // negative. O(total). Internal error naming the first violation found.
  Status CheckInvariant() const;

 private:
  std::vector<int32_t> ref_counts_;  // [total]
  std::vector<int32_t> free_list_;   // stack of free page ids
  int32_t used_ = 0;
};

}  // namespace lserve
