#include "kvcache/paged_batch.h"

#include <string>
#include <unordered_set>

namespace lserve {

Status ValidateBatchPlan(const BatchPlan& plan, const KvCacheManager& kv) {
  std::unordered_set<int64_t> seen;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const SequenceStep& step = plan.steps[i];
    const std::string where = "batch plan step " + std::to_string(i) + " (sequence " + std::to_string(step.seq_id) + ")";
    if (!kv.Contains(step.seq_id)) return InvalidArgument(where + ": the sequence is not in the KV cache");
    if (!seen.insert(step.seq_id).second) return InvalidArgument(where + ": the sequence appears twice");
    if (step.tokens.empty()) return InvalidArgument(where + ": no tokens");
    if (step.start_pos < 0) return InvalidArgument(where + ": negative start position");
    if (step.is_decode && step.tokens.size() != 1) {
      return InvalidArgument(where + ": a decode step has " + std::to_string(step.tokens.size()) + " tokens");
    }
    if (step.is_decode && !kv.decoding(step.seq_id)) {
      return InvalidArgument(where + ": decode step before BeginDecode");
    }
    const int64_t end = step.start_pos + static_cast<int64_t>(step.tokens.size());
    if (kv.length(step.seq_id) != end) {
      return InvalidArgument(where + ": the KV cache holds " + std::to_string(kv.length(step.seq_id)) +
                             " tokens, the step ends at " + std::to_string(end));
    }
  }
  return Status::Ok();
}

Result<PagedBatch> BuildPagedBatch(const BatchPlan& plan, const KvCacheManager& kv, KvPool pool) {
  LSERVE_RETURN_IF_ERROR(ValidateBatchPlan(plan, kv));
  PagedBatch batch;
  batch.pool = pool;
  batch.page_size = kv.config().page_size;
  batch.num_seqs = static_cast<int64_t>(plan.steps.size());
  const bool streaming = pool == KvPool::kStreaming && kv.config().has_streaming_heads();
  if (streaming) batch.sink_pages = kv.config().sink_pages();
  batch.q_start.reserve(plan.steps.size() + 1);
  batch.page_table_start.reserve(plan.steps.size() + 1);
  batch.q_start.push_back(0);
  batch.page_table_start.push_back(0);
  for (const SequenceStep& step : plan.steps) {
    const int64_t rows = static_cast<int64_t>(step.tokens.size());
    batch.q_pos0.push_back(step.start_pos);
    batch.kv_len.push_back(step.start_pos + rows);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t pos = step.start_pos + i;
      const KvSlot slot = kv.SlotFor(step.seq_id, pool, pos);
      batch.positions.push_back(pos);
      batch.slot_page.push_back(slot.page);
      batch.slot_offset.push_back(slot.offset);
    }
    batch.num_tokens += rows;
    batch.q_start.push_back(batch.num_tokens);
    const std::span<const int32_t> table = pool == KvPool::kRetrieval ? kv.RetrievalPageTable(step.seq_id)
                                                                      : kv.StreamingRingTable(step.seq_id);
    batch.page_table.insert(batch.page_table.end(), table.begin(), table.end());
    batch.page_table_start.push_back(static_cast<int64_t>(batch.page_table.size()));
    if (streaming) batch.ring_pages.push_back(kv.StreamingRingPages(step.seq_id));
  }
  return batch;
}

}  // namespace lserve
