// KvCacheManager: which physical pages each sequence holds in the two pools,
// and where each of its tokens lives. Pure logic over page ids; the model owns
// the storage (kv_layout.h) and the kernels read it through the page tables
// that this class hands out (paged_batch.h flattens them for one step).
//
// Life of a sequence:
//   AddSequence(id)                 length 0, prefill phase, no pages
//   Grow(id, n)  (repeated)         pages for tokens [0, n); call before the
//                                   step that appends tokens up to n
//   BeginDecode(id)                 before its first decode step: the
//                                   streaming ring narrows to the decode window
//   Grow(id, n + 1) ...             one decode token per step
//   Free(id)                        every page of both pools back at once
//
// Retrieval pool: page table of ceil(length / P) pages in logical order, one
// new page per P tokens; never a page past the sequence's end.
// Streaming pool (only when some layer has streaming heads): a StreamingRing
// of S sink + W local pages, W sized for the prefill window until
// BeginDecode and for the decode window after it.
//
// A streaming token is stored only while its logical page is held at the
// sequence's current length. Grow before a prefill chunk covers the whole
// chunk, so in a chunk longer than the ring the early tokens are never
// stored, and the chunk's early queries find in the ring only the part of
// their prefill window that survives the chunk: an attention kernel that needs
// the whole window reads the chunk's own keys from the step's fresh K/V.
//
// Admission: PagesNeeded(n) is what a sequence of n tokens holds while it
// prefills (the most it ever holds at that length); CheckCanEverFit(n) says up
// front whether a request of n tokens in total can ever be served by pools of
// this size; CanGrow / PagesToGrow say whether it fits now.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_cache_config.h"
#include "kvcache/page_allocator.h"
#include "kvcache/streaming_ring.h"

namespace lserve {

struct PageCounts {
  int64_t retrieval = 0;
  int64_t streaming = 0;
  friend bool operator==(const PageCounts&, const PageCounts&) = default;
};

// Where one token's K/V live in a pool: page id and token offset in the page.
// page == -1: the token is not stored (a streaming token outside the sink and
// the ring, a token at or past the sequence's length, or a pool the model does
// not use). Same convention as the kv_append kernel's slot_page.
struct KvSlot {
  int32_t page = -1;
  int32_t offset = 0;
  bool stored() const { return page >= 0; }
  friend bool operator==(const KvSlot&, const KvSlot&) = default;
};

class KvCacheManager {
 public:
  // Longest sequence the bookkeeping accepts (keeps every position product far
  // from int64 overflow); the pools are the real limit.
  static constexpr int64_t kMaxSequenceTokens = int64_t{1} << 40;

  // Validates the config (KvCacheConfig::Validate) and creates empty pools.
  static Result<KvCacheManager> Create(const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  const PageAllocator& pool(KvPool p) const { return pools_[static_cast<size_t>(p)]; }
  int64_t num_sequences() const { return static_cast<int64_t>(sequences_.size()); }

  // Pages a sequence of `num_tokens` tokens holds in each pool while
  // prefilling. num_tokens is clamped to [0, kMaxSequenceTokens].
  PageCounts PagesNeeded(int64_t num_tokens) const;
  // ResourceExhausted when a request of `max_tokens` tokens in total (prompt +
  // generation) needs more pages of some pool than the pool has, so it could
  // never be served even alone; OutOfRange beyond kMaxSequenceTokens.
  Status CheckCanEverFit(int64_t max_tokens) const;

  // InvalidArgument when the id is already live. The new sequence has length 0.
  Status AddSequence(int64_t seq_id);
  bool Contains(int64_t seq_id) const { return sequences_.count(seq_id) != 0; }

  // Pages that Grow(seq_id, new_len) would take from each pool. NotFound for
  // an unknown id, InvalidArgument when new_len < length, OutOfRange beyond
  // kMaxSequenceTokens.
  Result<PageCounts> PagesToGrow(int64_t seq_id, int64_t new_len) const;
  // Whether Grow(seq_id, new_len) would succeed now.
  bool CanGrow(int64_t seq_id, int64_t new_len) const;
  // Gives the sequence pages for tokens [0, new_len). All or nothing: on
  // ResourceExhausted (and every other error) nothing changes. new_len ==
  // length is a no-op.
  Status Grow(int64_t seq_id, int64_t new_len);

  // Enters the decode phase: the streaming ring keeps its sink pages and the
  // pages holding the last decode_local tokens, re-slotted for the decode ring
  // width, and returns its other pages to the pool. Idempotent. NotFound for
  // an unknown id.
  Status BeginDecode(int64_t seq_id);

  // Returns every page of both pools and forgets the sequence. NotFound for an
  // unknown id.
  Status Free(int64_t seq_id);

  // --- Queries. Precondition for all: Contains(seq_id). ---
  int64_t length(int64_t seq_id) const { return Find(seq_id).length; }
  bool decoding(int64_t seq_id) const { return Find(seq_id).decoding; }
  // Retrieval page ids in logical order, ceil(length / P) of them (empty when
  // no layer has retrieval heads). Valid until the next Grow or Free.
  std::span<const int32_t> RetrievalPageTable(int64_t seq_id) const;
  // Streaming ring in slot order, [S + W] with -1 for a slot without a page
  // (empty when no layer has streaming heads). Valid until the next Grow,
  // BeginDecode or Free.
  std::span<const int32_t> StreamingRingTable(int64_t seq_id) const;
  // W of the sequence's ring now (0 when no layer has streaming heads).
  int64_t StreamingRingPages(int64_t seq_id) const;
  // The streaming page holding logical page `logical_page` (tokens
  // [b*P, (b+1)*P)), or -1 when it is not held.
  int32_t StreamingPageFor(int64_t seq_id, int64_t logical_page) const;
  // Where token `pos` of the sequence lives in `pool` (see KvSlot).
  KvSlot SlotFor(int64_t seq_id, KvPool pool, int64_t pos) const;
  // Pages the sequence holds in each pool now.
  PageCounts PagesHeld(int64_t seq_id) const;

  // Both allocators' invariants; every used page held by as many live
  // sequences as its reference count (today: exactly one) and every free page
  // by none; each sequence's tables match its length and phase. O(pages).
  Status CheckInvariant() const;

 private:
  struct SequencePages {
    int64_t length = 0;
    bool decoding = false;
    std::vector<int32_t> retrieval;          // [ceil(length / P)] when retrieval heads exist
    std::optional<StreamingRing> streaming;  // when streaming heads exist
  };

  explicit KvCacheManager(const KvCacheConfig& config);
  const SequencePages& Find(int64_t seq_id) const;
  PageCounts PagesToGrowUnchecked(const SequencePages& seq, int64_t new_len) const;
  PageAllocator& mutable_pool(KvPool p) { return pools_[static_cast<size_t>(p)]; }

  KvCacheConfig config_;
  bool has_retrieval_ = false;
  bool has_streaming_ = false;
  std::vector<PageAllocator> pools_;  // [2], indexed by KvPool
  std::unordered_map<int64_t, SequencePages> sequences_;
};

}  // namespace lserve
