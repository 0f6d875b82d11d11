#include "kvcache/page_allocator.h"

#include <limits>
#include <string>

#include "core/check.h"

namespace lserve {

PageAllocator::PageAllocator(int32_t num_pages) {
  LSERVE_CHECK(num_pages >= 0);
  ref_counts_.assign(static_cast<size_t>(num_pages), 0);
  free_list_.reserve(static_cast<size_t>(num_pages));
  // Pushed in reverse so that a fresh pool hands out 0, 1, 2, ...
  for (int32_t p = num_pages - 1; p >= 0; --p) free_list_.push_back(p);
}

Result<int32_t> PageAllocator::Allocate() {
  if (free_list_.empty()) {
    return ResourceExhausted("KV pool exhausted: all " + std::to_string(total_pages()) +
                             " pages are in use");
  }
  const int32_t page = free_list_.back();
  free_list_.pop_back();
  ref_counts_[static_cast<size_t>(page)] = 1;
  ++used_;
  return page;
}

Status PageAllocator::Ref(int32_t page) {
  if (!valid(page)) return InvalidArgument("Ref of page " + std::to_string(page) + " outside the pool");
  int32_t& count = ref_counts_[static_cast<size_t>(page)];
  if (count == 0) return InvalidArgument("Ref of free page " + std::to_string(page));
  if (count == std::numeric_limits<int32_t>::max()) {
    return ResourceExhausted("reference count of page " + std::to_string(page) + " overflows");
  }
  ++count;
  return Status::Ok();
}

Status PageAllocator::Unref(int32_t page) {
  if (!valid(page)) return InvalidArgument("Unref of page " + std::to_string(page) + " outside the pool");
  int32_t& count = ref_counts_[static_cast<size_t>(page)];
  if (count == 0) return InvalidArgument("Unref of free page " + std::to_string(page));
  if (--count == 0) {
    free_list_.push_back(page);
    --used_;
  }
  return Status::Ok();
}

Status PageAllocator::CheckInvariant() const {
  const int32_t total = total_pages();
  if (free_pages() + used_ != total) {
    return Internal("page allocator: free " + std::to_string(free_pages()) + " + used " +
                    std::to_string(used_) + " != total " + std::to_string(total));
  }
  std::vector<uint8_t> on_free_list(static_cast<size_t>(total), 0);
  for (const int32_t page : free_list_) {
    if (!valid(page)) return Internal("page allocator: free list holds invalid page " + std::to_string(page));
    if (on_free_list[static_cast<size_t>(page)]) {
      return Internal("page allocator: page " + std::to_string(page) + " is on the free list twice");
    }
    on_free_list[static_cast<size_t>(page)] = 1;
    if (ref_count(page) != 0) {
      return Internal("page allocator: page " + std::to_string(page) + " is both free and used (count " +
                      std::to_string(ref_count(page)) + ")");
    }
  }
  int32_t counted_used = 0;
  for (int32_t page = 0; page < total; ++page) {
    const int32_t count = ref_count(page);
    if (count < 0) return Internal("page allocator: page " + std::to_string(page) + " has a negative count");
    if (count > 0) ++counted_used;
    if (count == 0 && !on_free_list[static_cast<size_t>(page)]) {
      return Internal("page allocator: page " + std::to_string(page) + " has count 0 but is not free");
    }
  }
  if (counted_used != used_) {
    return Internal("page allocator: " + std::to_string(counted_used) + " pages have holders but used is " +
                    std::to_string(used_));
  }
  return Status::Ok();
}

}  // namespace lserve
