#include "kvcache/kv_cache.h"

#include <algorithm>
#include <string>

#include "core/check.h"

namespace lserve {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string SeqName(int64_t seq_id) { return "sequence " + std::to_string(seq_id); }

}  // namespace

KvCacheManager::KvCacheManager(const KvCacheConfig& config)
    : config_(config),
      has_retrieval_(config.has_retrieval_heads()),
      has_streaming_(config.has_streaming_heads()) {
  pools_.emplace_back(static_cast<int32_t>(config.num_retrieval_pages));
  pools_.emplace_back(static_cast<int32_t>(config.num_streaming_pages));
}

Result<KvCacheManager> KvCacheManager::Create(const KvCacheConfig& config) {
  LSERVE_RETURN_IF_ERROR(config.Validate());
  return KvCacheManager(config);
}

const KvCacheManager::SequencePages& KvCacheManager::Find(int64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  LSERVE_CHECK(it != sequences_.end());  // precondition: Contains(seq_id)
  return it->second;
}

PageCounts KvCacheManager::PagesNeeded(int64_t num_tokens) const {
  num_tokens = std::clamp<int64_t>(num_tokens, 0, kMaxSequenceTokens);
  const int64_t pages = CeilDiv(num_tokens, config_.page_size);
  PageCounts need;
  if (has_retrieval_) need.retrieval = pages;
  // Slots fill in logical order, so a prefilling ring holds min(pages, S + W).
  if (has_streaming_) need.streaming = std::min(pages, config_.sink_pages() + config_.prefill_ring_pages());
  return need;
}

Status KvCacheManager::CheckCanEverFit(int64_t max_tokens) const {
  if (max_tokens < 0 || max_tokens > kMaxSequenceTokens) {
    return OutOfRange("a request of " + std::to_string(max_tokens) + " tokens is outside [0, " +
                      std::to_string(kMaxSequenceTokens) + "]");
  }
  const PageCounts need = PagesNeeded(max_tokens);
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    const int64_t n = p == KvPool::kRetrieval ? need.retrieval : need.streaming;
    if (n > pool(p).total_pages()) {
      return ResourceExhausted("a request of " + std::to_string(max_tokens) + " tokens needs " + std::to_string(n) +
                               " " + KvPoolName(p) + " KV pages of " + std::to_string(config_.page_size) +
                               " tokens, the pool has " + std::to_string(pool(p).total_pages()));
    }
  }
  return Status::Ok();
}

Status KvCacheManager::AddSequence(int64_t seq_id) {
  if (Contains(seq_id)) return InvalidArgument(SeqName(seq_id) + " is already in the KV cache");
  SequencePages seq;
  if (has_streaming_) seq.streaming.emplace(config_.sink_pages(), config_.prefill_ring_pages());
  sequences_.emplace(seq_id, std::move(seq));
  return Status::Ok();
}

PageCounts KvCacheManager::PagesToGrowUnchecked(const SequencePages& seq, int64_t new_len) const {
  PageCounts need;
  if (has_retrieval_) {
    need.retrieval = CeilDiv(new_len, config_.page_size) - static_cast<int64_t>(seq.retrieval.size());
  }
  if (seq.streaming) need.streaming = seq.streaming->PagesToCover(CeilDiv(new_len, config_.page_size) - 1);
  return need;
}

Result<PageCounts> KvCacheManager::PagesToGrow(int64_t seq_id, int64_t new_len) const {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFound(SeqName(seq_id) + " is not in the KV cache");
  const SequencePages& seq = it->second;
  if (new_len < seq.length) {
    return InvalidArgument(SeqName(seq_id) + " cannot shrink from " + std::to_string(seq.length) + " to " +
                           std::to_string(new_len) + " tokens");
  }
  if (new_len > kMaxSequenceTokens) {
    return OutOfRange(SeqName(seq_id) + ": " + std::to_string(new_len) + " tokens is beyond the limit of " +
                      std::to_string(kMaxSequenceTokens));
  }
  return PagesToGrowUnchecked(seq, new_len);
}

bool KvCacheManager::CanGrow(int64_t seq_id, int64_t new_len) const {
  Result<PageCounts> need = PagesToGrow(seq_id, new_len);
  return need.ok() && need->retrieval <= pool(KvPool::kRetrieval).free_pages() &&
         need->streaming <= pool(KvPool::kStreaming).free_pages();
}

Status KvCacheManager::Grow(int64_t seq_id, int64_t new_len) {
  LSERVE_ASSIGN_OR_RETURN(const PageCounts need, PagesToGrow(seq_id, new_len));
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    const int64_t n = p == KvPool::kRetrieval ? need.retrieval : need.streaming;
    if (n > pool(p).free_pages()) {
      return ResourceExhausted(SeqName(seq_id) + " needs " + std::to_string(n) + " more " + KvPoolName(p) +
                               " KV pages to reach " + std::to_string(new_len) + " tokens, " +
                               std::to_string(pool(p).free_pages()) + " are free");
    }
  }
  SequencePages& seq = sequences_.at(seq_id);
  const int64_t pages = CeilDiv(new_len, config_.page_size);
  if (has_retrieval_) {
    PageAllocator& retrieval = mutable_pool(KvPool::kRetrieval);
    while (static_cast<int64_t>(seq.retrieval.size()) < pages) {
      Result<int32_t> page = retrieval.Allocate();
      LSERVE_CHECK(page.ok());  // counted above
      seq.retrieval.push_back(*page);
    }
  }
  if (seq.streaming) seq.streaming->Cover(pages - 1, mutable_pool(KvPool::kStreaming));
  seq.length = new_len;
  return Status::Ok();
}

Status KvCacheManager::BeginDecode(int64_t seq_id) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFound(SeqName(seq_id) + " is not in the KV cache");
  SequencePages& seq = it->second;
  if (seq.decoding) return Status::Ok();
  seq.decoding = true;
  if (seq.streaming) {
    // The last decode_local tokens span at most ceil(decode_local / P) + 1 =
    // decode_ring_pages() pages, all inside the prefill ring (which is at least
    // as wide), so they fit and are held.
    const int64_t keep_from = std::max<int64_t>(seq.length - config_.decode_local, 0) / config_.page_size;
    seq.streaming->Shrink(config_.decode_ring_pages(), keep_from, mutable_pool(KvPool::kStreaming));
  }
  return Status::Ok();
}

Status KvCacheManager::Free(int64_t seq_id) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return NotFound(SeqName(seq_id) + " is not in the KV cache");
  SequencePages& seq = it->second;
  for (const int32_t page : seq.retrieval) LSERVE_CHECK(mutable_pool(KvPool::kRetrieval).Unref(page).ok());
  if (seq.streaming) seq.streaming->Release(mutable_pool(KvPool::kStreaming));
  sequences_.erase(it);
  return Status::Ok();
}

std::span<const int32_t> KvCacheManager::RetrievalPageTable(int64_t seq_id) const {
  return Find(seq_id).retrieval;
}

std::span<const int32_t> KvCacheManager::StreamingRingTable(int64_t seq_id) const {
  const SequencePages& seq = Find(seq_id);
  if (!seq.streaming) return {};
  return seq.streaming->slots();
}

int64_t KvCacheManager::StreamingRingPages(int64_t seq_id) const {
  const SequencePages& seq = Find(seq_id);
  return seq.streaming ? seq.streaming->ring_pages() : 0;
}

int32_t KvCacheManager::StreamingPageFor(int64_t seq_id, int64_t logical_page) const {
  const SequencePages& seq = Find(seq_id);
  return seq.streaming ? seq.streaming->PageFor(logical_page) : -1;
}

KvSlot KvCacheManager::SlotFor(int64_t seq_id, KvPool p, int64_t pos) const {
  const SequencePages& seq = Find(seq_id);
  if (pos < 0 || pos >= seq.length) return {};
  const int64_t logical_page = pos / config_.page_size;
  const int32_t offset = static_cast<int32_t>(pos % config_.page_size);
  if (p == KvPool::kRetrieval) {
    if (!has_retrieval_) return {};
    return {seq.retrieval[static_cast<size_t>(logical_page)], offset};
  }
  if (!seq.streaming) return {};
  const int32_t page = seq.streaming->PageFor(logical_page);
  if (page < 0) return {};
  return {page, offset};
}

PageCounts KvCacheManager::PagesHeld(int64_t seq_id) const {
  const SequencePages& seq = Find(seq_id);
  return {static_cast<int64_t>(seq.retrieval.size()), seq.streaming ? seq.streaming->pages_held() : 0};
}

Status KvCacheManager::CheckInvariant() const {
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    Status s = pool(p).CheckInvariant();
    if (!s.ok()) return s.Annotate(KvPoolName(p));
  }
  std::vector<std::vector<int32_t>> holders(2);
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    holders[static_cast<size_t>(p)].assign(static_cast<size_t>(pool(p).total_pages()), 0);
  }
  auto hold = [&](KvPool p, int32_t page, int64_t seq_id) -> Status {
    if (!pool(p).valid(page)) {
      return Internal(SeqName(seq_id) + " holds " + KvPoolName(p) + " page " + std::to_string(page) +
                      " outside the pool");
    }
    ++holders[static_cast<size_t>(p)][static_cast<size_t>(page)];
    return Status::Ok();
  };
  for (const auto& [seq_id, seq] : sequences_) {
    const int64_t pages = CeilDiv(seq.length, config_.page_size);
    const int64_t want_retrieval = has_retrieval_ ? pages : 0;
    if (static_cast<int64_t>(seq.retrieval.size()) != want_retrieval) {
      return Internal(SeqName(seq_id) + " of " + std::to_string(seq.length) + " tokens holds " +
                      std::to_string(seq.retrieval.size()) + " retrieval pages, not " +
                      std::to_string(want_retrieval));
    }
    for (const int32_t page : seq.retrieval) LSERVE_RETURN_IF_ERROR(hold(KvPool::kRetrieval, page, seq_id));
    if (seq.streaming.has_value() != has_streaming_) {
      return Internal(SeqName(seq_id) + " has a streaming ring iff the model has streaming heads");
    }
    if (!seq.streaming) continue;
    const StreamingRing& ring = *seq.streaming;
    const int64_t want_width = seq.decoding ? config_.decode_ring_pages() : config_.prefill_ring_pages();
    if (ring.sink_pages() != config_.sink_pages() || ring.ring_pages() != want_width ||
        static_cast<int64_t>(ring.slots().size()) != ring.sink_pages() + ring.ring_pages()) {
      return Internal(SeqName(seq_id) + ": streaming ring of " + std::to_string(ring.sink_pages()) + " + " +
                      std::to_string(ring.ring_pages()) + " slots, want " + std::to_string(config_.sink_pages()) +
                      " + " + std::to_string(want_width));
    }
    if (ring.last_page() != pages - 1) {
      return Internal(SeqName(seq_id) + ": streaming ring covers logical pages up to " +
                      std::to_string(ring.last_page()) + ", length " + std::to_string(seq.length));
    }
    for (const int32_t page : ring.slots()) {
      if (page >= 0) LSERVE_RETURN_IF_ERROR(hold(KvPool::kStreaming, page, seq_id));
    }
    // Every held logical page has a page; the newest W logical pages at most are held.
    const int64_t first_ring_held = std::max(ring.oldest_ring_page(), ring.sink_pages());
    if (ring.last_page() - first_ring_held + 1 > ring.ring_pages()) {
      return Internal(SeqName(seq_id) + ": streaming ring holds more logical pages than slots");
    }
    auto check_held = [&](int64_t b) -> Status {
      if (ring.PageFor(b) >= 0) return Status::Ok();
      return Internal(SeqName(seq_id) + ": streaming logical page " + std::to_string(b) + " is held without a page");
    };
    for (int64_t b = 0; b <= std::min(ring.last_page(), ring.sink_pages() - 1); ++b) {
      LSERVE_RETURN_IF_ERROR(check_held(b));
    }
    for (int64_t b = first_ring_held; b <= ring.last_page(); ++b) LSERVE_RETURN_IF_ERROR(check_held(b));
  }
  for (const KvPool p : {KvPool::kRetrieval, KvPool::kStreaming}) {
    for (int32_t page = 0; page < pool(p).total_pages(); ++page) {
      const int32_t n = holders[static_cast<size_t>(p)][static_cast<size_t>(page)];
      if (n != pool(p).ref_count(page)) {
        return Internal(std::string(KvPoolName(p)) + " page " + std::to_string(page) + " is held by " +
                        std::to_string(n) + " sequences but its reference count is " +
                        std::to_string(pool(p).ref_count(page)));
      }
    }
  }
  return Status::Ok();
}

}  // namespace lserve
