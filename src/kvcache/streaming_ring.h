// StreamingRing: the streaming-pool pages of one sequence (DESIGN.md §4).
//
// Logical page b holds tokens [b*P, (b+1)*P). It lives in slot
//   b                      if b < S   (sink pages, kept for the whole life)
//   S + (b - S) mod W      otherwise  (the ring of W local pages)
// and slots_[slot] is a physical page id, or -1 while the slot has no page.
// The slot table is fixed: a slot's page never moves and the table is never
// rebuilt by slicing a longer one (LSERVE.md §3.3 [HAZARD]). A slot takes its
// page the first time a logical page maps to it, so a short prompt holds only
// the pages it touches; from then on logical page b + W reuses b's page.
//
// Held logical pages: b <= last_page() and (b < S or b >= oldest_ring_page()).
// Only a held page's tokens can be read back. A token of a logical page that a
// later page of the same Cover() call overwrites is never held at all.
//
// Worked example, P = 64, S = 2, W = 5 (sink 128, decode local 256):
//   tokens 0..1023 (logical pages 0..15): slots 0 1 | 2 3 4 5 6 hold logical
//   pages 0 1 | 12 13 14 15 11; oldest ring page 11; token 700 (page 10) is
//   gone. Token 1024 starts page 16, which reuses slot 6 (page 11's).
//
// Shrink() narrows the ring when a sequence starts decoding: the kept logical
// pages move to their slots under the new width (S + (b - S) mod W'), so the
// mapping stays the formula for every held page; all other ring pages go back.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvcache/page_allocator.h"

namespace lserve {

class StreamingRing {
 public:
  // Precondition: sink_pages >= 0, ring_pages >= 1.
  StreamingRing(int64_t sink_pages, int64_t ring_pages);

  int64_t sink_pages() const { return sink_pages_; }  // S
  int64_t ring_pages() const { return ring_pages_; }  // W
  int64_t last_page() const { return last_page_; }    // -1 before the first Cover
  int64_t oldest_ring_page() const { return oldest_ring_page_; }
  // Slot table, [S + W], slot order; -1 = no page.
  std::span<const int32_t> slots() const { return slots_; }
  int64_t pages_held() const;  // slots with a page

  // Precondition: logical_page >= 0.
  int64_t SlotOf(int64_t logical_page) const {
    return logical_page < sink_pages_ ? logical_page
                                      : sink_pages_ + (logical_page - sink_pages_) % ring_pages_;
  }
  bool Holds(int64_t logical_page) const {
    return logical_page >= 0 && logical_page <= last_page_ &&
           (logical_page < sink_pages_ || logical_page >= oldest_ring_page_);
  }
  // The page holding `logical_page`, or -1 when it is not held.
  int32_t PageFor(int64_t logical_page) const {
    return Holds(logical_page) ? slots_[static_cast<size_t>(SlotOf(logical_page))] : -1;
  }

  // Pages that Cover(new_last_page) takes from the pool (0 when
  // new_last_page <= last_page()).
  int64_t PagesToCover(int64_t new_last_page) const;

  // Extends the held pages to logical pages up to new_last_page.
  // Precondition: the allocator has PagesToCover(new_last_page) free pages.
  void Cover(int64_t new_last_page, PageAllocator& pool);

  // Narrows the ring to new_ring_pages slots, keeping the ring pages of logical
  // pages [keep_from, last_page()] (sink pages are always kept) and returning
  // every other ring page to the pool. Preconditions: 1 <= new_ring_pages <=
  // ring_pages(); keep_from >= oldest_ring_page(); the kept pages fit:
  // last_page() - max(keep_from, S) + 1 <= new_ring_pages.
  void Shrink(int64_t new_ring_pages, int64_t keep_from, PageAllocator& pool);

  // Returns every page to the pool; the ring is empty afterwards.
  void Release(PageAllocator& pool);

 private:
  // First ring logical page of the range that Cover(new_last_page) must give a
  // page: older pages of that range are overwritten within the same call.
  int64_t FirstRingPageToCover(int64_t new_last_page) const;

  int64_t sink_pages_;
  int64_t ring_pages_;
  int64_t last_page_ = -1;
  int64_t oldest_ring_page_;  // >= S
  std::vector<int32_t> slots_;
};

}  // namespace lserve
