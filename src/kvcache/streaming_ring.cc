#include "kvcache/streaming_ring.h"

#include <algorithm>

#include "core/check.h"

namespace lserve {

StreamingRing::StreamingRing(int64_t sink_pages, int64_t ring_pages)
    : sink_pages_(sink_pages), ring_pages_(ring_pages), oldest_ring_page_(sink_pages) {
  LSERVE_CHECK(sink_pages >= 0 && ring_pages >= 1);
  slots_.assign(static_cast<size_t>(sink_pages + ring_pages), -1);
}

int64_t StreamingRing::pages_held() const {
  return std::count_if(slots_.begin(), slots_.end(), [](int32_t p) { return p >= 0; });
}

int64_t StreamingRing::FirstRingPageToCover(int64_t new_last_page) const {
  return std::max({sink_pages_, last_page_ + 1, new_last_page - ring_pages_ + 1});
}

int64_t StreamingRing::PagesToCover(int64_t new_last_page) const {
  int64_t pages = 0;
  // Sink slots get their page when first covered, so each new one is empty.
  for (int64_t b = last_page_ + 1; b <= std::min(new_last_page, sink_pages_ - 1); ++b) ++pages;
  // At most W consecutive ring pages: distinct slots.
  for (int64_t b = FirstRingPageToCover(new_last_page); b <= new_last_page; ++b) {
    if (slots_[static_cast<size_t>(SlotOf(b))] < 0) ++pages;
  }
  return pages;
}

void StreamingRing::Cover(int64_t new_last_page, PageAllocator& pool) {
  if (new_last_page <= last_page_) return;
  auto take = [&](int64_t slot) {
    int32_t& page = slots_[static_cast<size_t>(slot)];
    if (page >= 0) return;  // reused: the logical page W before this one is overwritten
    Result<int32_t> fresh = pool.Allocate();
    LSERVE_CHECK(fresh.ok());  // precondition: PagesToCover pages are free
    page = *fresh;
  };
  for (int64_t b = last_page_ + 1; b <= std::min(new_last_page, sink_pages_ - 1); ++b) take(b);
  for (int64_t b = FirstRingPageToCover(new_last_page); b <= new_last_page; ++b) take(SlotOf(b));
  last_page_ = new_last_page;
  oldest_ring_page_ = std::max(oldest_ring_page_, new_last_page - ring_pages_ + 1);
}

void StreamingRing::Shrink(int64_t new_ring_pages, int64_t keep_from, PageAllocator& pool) {
  keep_from = std::max(keep_from, sink_pages_);
  LSERVE_CHECK(new_ring_pages >= 1 && new_ring_pages <= ring_pages_);
  LSERVE_CHECK(keep_from >= oldest_ring_page_);
  LSERVE_CHECK(last_page_ - keep_from + 1 <= new_ring_pages);
  std::vector<int32_t> narrowed(static_cast<size_t>(sink_pages_ + new_ring_pages), -1);
  std::copy(slots_.begin(), slots_.begin() + sink_pages_, narrowed.begin());
  for (int64_t b = keep_from; b <= last_page_; ++b) {
    int32_t& old_slot = slots_[static_cast<size_t>(SlotOf(b))];
    narrowed[static_cast<size_t>(sink_pages_ + (b - sink_pages_) % new_ring_pages)] = old_slot;
    old_slot = -1;  // moved, not returned
  }
  for (auto it = slots_.begin() + sink_pages_; it != slots_.end(); ++it) {
    if (*it >= 0) LSERVE_CHECK(pool.Unref(*it).ok());
  }
  slots_ = std::move(narrowed);
  ring_pages_ = new_ring_pages;
  oldest_ring_page_ = keep_from;
}

void StreamingRing::Release(PageAllocator& pool) {
  for (int32_t& page : slots_) {
    if (page >= 0) LSERVE_CHECK(pool.Unref(page).ok());
    page = -1;
  }
  last_page_ = -1;
  oldest_ring_page_ = sink_pages_;
}

}  // namespace lserve
