#include "backend/kernel_checks.h"

#include <cmath>
#include <string>

namespace lserve {
namespace {

// Element counts of one call stay far below 2^62 so that index arithmetic in
// the kernels (int64) cannot overflow.
constexpr int64_t kMaxElements = int64_t{1} << 50;

bool ProductFits(std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (d != 0 && n > kMaxElements / d) return false;
    n *= d;
  }
  return true;
}

Status Bad(const char* op, const std::string& what) { return InvalidArgument(std::string(op) + ": " + what); }

}  // namespace

Status CheckEmbedding(const EmbeddingParams& p) {
  if (p.vocab <= 0 || p.hidden <= 0 || p.n < 0) return Bad("embedding", "vocab and hidden must be > 0, n >= 0");
  if (!ProductFits({p.vocab, p.hidden}) || !ProductFits({p.n, p.hidden})) return Bad("embedding", "sizes overflow");
  if (p.n > 0 && (p.table == nullptr || p.ids == nullptr || p.out == nullptr))
    return Bad("embedding", "table, ids and out are required");
  return Status::Ok();
}

Status CheckRmsNorm(const RmsNormParams& p) {
  if (p.dim <= 0 || p.n < 0) return Bad("rmsnorm", "dim must be > 0, n >= 0");
  if (!ProductFits({p.n, p.dim})) return Bad("rmsnorm", "sizes overflow");
  if (!(p.eps >= 0.0f) || !std::isfinite(p.eps)) return Bad("rmsnorm", "eps must be finite and >= 0");
  if (p.n > 0 && (p.x == nullptr || p.weight == nullptr || p.out == nullptr))
    return Bad("rmsnorm", "x, weight and out are required");
  return Status::Ok();
}

Status CheckRope(const RopeParams& p) {
  if (p.n < 0 || p.head_dim <= 0 || p.head_dim % 2 != 0) return Bad("rope", "head_dim must be even and > 0, n >= 0");
  if (p.q != nullptr && p.n_q_heads <= 0) return Bad("rope", "n_q_heads must be > 0 when q is given");
  if (p.k != nullptr && p.n_kv_heads <= 0) return Bad("rope", "n_kv_heads must be > 0 when k is given");
  if (!ProductFits({p.n, p.q ? p.n_q_heads : 1, p.head_dim}) || !ProductFits({p.n, p.k ? p.n_kv_heads : 1, p.head_dim}))
    return Bad("rope", "sizes overflow");
  if (!std::isfinite(p.attention_scaling)) return Bad("rope", "attention_scaling must be finite");
  if (p.n > 0 && (p.q != nullptr || p.k != nullptr) && (p.positions == nullptr || p.inv_freq == nullptr))
    return Bad("rope", "positions and inv_freq are required");
  return Status::Ok();
}

Status CheckLinear(const LinearParams& p) {
  if (p.m < 0 || p.n <= 0 || p.k <= 0) return Bad("linear", "n and k must be > 0, m >= 0");
  if (!ProductFits({p.m, p.k}) || !ProductFits({p.m, p.n}) || !ProductFits({p.n, p.k}))
    return Bad("linear", "sizes overflow");
  if (p.m > 0 && (p.x == nullptr || p.w == nullptr || p.y == nullptr)) return Bad("linear", "x, w and y are required");
  if (p.m > 0 && static_cast<const void*>(p.x) == static_cast<const void*>(p.y))
    return Bad("linear", "y must not alias x");
  const int64_t block = DTypeBlockElems(p.w_dtype);
  if (block > 1 && p.k % block != 0) {
    return Bad("linear", "k = " + std::to_string(p.k) + " is not a whole number of " +
                             std::string(DTypeName(p.w_dtype)) + " blocks");
  }
  return Status::Ok();
}

Status CheckSwiglu(const SwigluParams& p) {
  if (p.m < 0 || p.inter <= 0) return Bad("swiglu", "inter must be > 0, m >= 0");
  if (!ProductFits({p.m, p.inter})) return Bad("swiglu", "sizes overflow");
  if (p.m > 0 && (p.gate == nullptr || p.up == nullptr || p.out == nullptr))
    return Bad("swiglu", "gate, up and out are required");
  return Status::Ok();
}

Status CheckKvAppend(const KvAppendParams& p) {
  if (p.n_tokens < 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_pool_heads < 0 || p.page_size <= 0)
    return Bad("kv_append", "n_kv_heads, head_dim and page_size must be > 0; n_tokens, n_pool_heads >= 0");
  if (!ProductFits({p.n_tokens, p.n_kv_heads, p.head_dim}) || !ProductFits({p.n_pool_heads, p.page_size, p.head_dim}))
    return Bad("kv_append", "sizes overflow");
  if (p.n_tokens == 0 || p.n_pool_heads == 0) return Status::Ok();
  if (p.k == nullptr || p.v == nullptr || p.pool_heads == nullptr || p.k_cache == nullptr ||
      p.v_cache == nullptr || p.slot_page == nullptr || p.slot_offset == nullptr)
    return Bad("kv_append", "k, v, pool_heads, k_cache, v_cache and the slot arrays are required");
  if (p.k_stats != nullptr) {
    if (p.logical_page_size <= 0 || p.page_size % p.logical_page_size != 0)
      return Bad("kv_append", "logical_page_size must divide page_size");
    if (p.positions == nullptr) return Bad("kv_append", "positions are required with key statistics");
  }
  return Status::Ok();
}

Status CheckPagedAttention(const PagedAttentionParams& p) {
  if (p.n_q_heads <= 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_seqs < 0 || p.page_size <= 0)
    return Bad("attention", "heads, head_dim and page_size must be > 0, n_seqs >= 0");
  if (p.n_q_heads % p.n_kv_heads != 0) return Bad("attention", "n_kv_heads must divide n_q_heads");
  if (!ProductFits({p.n_q_heads, p.head_dim}) || !ProductFits({p.n_kv_heads, p.page_size, p.head_dim}))
    return Bad("attention", "sizes overflow");
  if (!std::isfinite(p.scale)) return Bad("attention", "scale must be finite");
  if (p.n_seqs == 0) return Status::Ok();
  if (p.q == nullptr || p.out == nullptr || p.q_start == nullptr || p.q_pos0 == nullptr || p.kv_len == nullptr ||
      p.page_table_start == nullptr || p.k_cache == nullptr || p.v_cache == nullptr)
    return Bad("attention", "q, out, the sequence arrays and the caches are required");
  if (static_cast<const void*>(p.q) == static_cast<const void*>(p.out)) return Bad("attention", "out must not alias q");
  return Status::Ok();
}

Status CheckMergeStates(const MergeStatesParams& p) {
  if (p.n < 0 || p.head_dim <= 0) return Bad("merge", "head_dim must be > 0, n >= 0");
  if (!ProductFits({p.n, p.head_dim})) return Bad("merge", "sizes overflow");
  if (p.n > 0 && (p.v_a == nullptr || p.lse_a == nullptr || p.v_b == nullptr || p.lse_b == nullptr ||
                  p.v_out == nullptr))
    return Bad("merge", "v_a, lse_a, v_b, lse_b and v_out are required");
  return Status::Ok();
}

Status CheckAdd(const AddParams& p) {
  if (p.n < 0 || p.n > kMaxElements) return Bad("add", "n must be in [0, 2^50]");
  if (p.n > 0 && (p.a == nullptr || p.b == nullptr || p.out == nullptr)) return Bad("add", "a, b and out are required");
  return Status::Ok();
}

Status CheckSparseAttention(const SparseAttentionParams& p) {
  if (p.n_q_heads <= 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_seqs < 0 || p.page_size <= 0)
    return Bad("sparse_attention", "heads, head_dim and page_size must be > 0, n_seqs >= 0");
  if (p.n_q_heads % p.n_kv_heads != 0) return Bad("sparse_attention", "n_kv_heads must divide n_q_heads");
  if (!ProductFits({p.n_q_heads, p.head_dim}) || !ProductFits({p.n_kv_heads, p.page_size, p.head_dim}) ||
      p.n_retrieval_heads < 0 || p.n_streaming_heads < 0 || p.n_retrieval_heads > p.n_kv_heads ||
      p.n_streaming_heads > p.n_kv_heads)
    return Bad("sparse_attention", "sizes overflow or pool head counts out of range");
  if (!std::isfinite(p.scale)) return Bad("sparse_attention", "scale must be finite");
  if (p.sink < 0 || p.local < 0 || p.stream_sink_pages < 0 || p.stream_ring_pages < 0 || p.max_selected < 0)
    return Bad("sparse_attention", "windows, ring sizes and max_selected must be >= 0");
  if (p.n_seqs == 0) return Status::Ok();
  if (p.q == nullptr || p.out == nullptr || p.q_start == nullptr || p.q_pos0 == nullptr || p.kv_len == nullptr ||
      p.head_mode == nullptr || p.pool_slot == nullptr)
    return Bad("sparse_attention", "q, out, the sequence arrays and the head arrays are required");
  if (static_cast<const void*>(p.q) == static_cast<const void*>(p.out))
    return Bad("sparse_attention", "out must not alias q");
  if (p.n_retrieval_heads > 0 && (p.page_table_start_r == nullptr || p.k_cache_r == nullptr || p.v_cache_r == nullptr))
    return Bad("sparse_attention", "retrieval heads need the retrieval tables and caches");
  if (p.n_streaming_heads > 0 && (p.page_table_start_s == nullptr || p.k_cache_s == nullptr || p.v_cache_s == nullptr))
    return Bad("sparse_attention", "streaming heads need the streaming tables and caches");
  if (p.selected_pages != nullptr && p.n_selected == nullptr)
    return Bad("sparse_attention", "n_selected is required with selected_pages");
  return Status::Ok();
}

Status CheckSelectPages(const PageSelectorParams& p) {
  if (p.n_q_heads <= 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_seqs < 0 || p.page_size <= 0 ||
      p.logical_page_size <= 0 || p.max_pages < 0)
    return Bad("select_pages", "heads, head_dim and page sizes must be > 0, n_seqs and max_pages >= 0");
  if (p.n_q_heads % p.n_kv_heads != 0) return Bad("select_pages", "n_kv_heads must divide n_q_heads");
  if (p.page_size % p.logical_page_size != 0) return Bad("select_pages", "logical_page_size must divide page_size");
  if (p.n_retrieval_heads < 0 || p.n_retrieval_heads > p.n_kv_heads) return Bad("select_pages", "bad pool head count");
  if (p.n_seqs == 0) return Status::Ok();
  if (p.q == nullptr || p.kv_len == nullptr || p.head_mode == nullptr || p.pool_slot == nullptr ||
      p.selected_pages == nullptr || p.n_selected == nullptr)
    return Bad("select_pages", "q, kv_len, the head arrays and the outputs are required");
  if (p.n_retrieval_heads > 0 && (p.page_table_start_r == nullptr || p.k_stats == nullptr))
    return Bad("select_pages", "retrieval heads need the tables and key statistics");
  return Status::Ok();
}

Status CheckEmbeddingArrays(const EmbeddingParams& p) {
  for (int64_t i = 0; i < p.n; ++i) {
    if (p.ids[i] < 0 || p.ids[i] >= p.vocab) {
      return OutOfRange("embedding: token id " + std::to_string(p.ids[i]) + " outside the vocabulary of " +
                        std::to_string(p.vocab));
    }
  }
  return Status::Ok();
}

Status CheckKvAppendArrays(const KvAppendParams& p) {
  if (p.n_tokens == 0 || p.n_pool_heads == 0) return Status::Ok();
  for (int64_t h = 0; h < p.n_pool_heads; ++h) {
    if (p.pool_heads[h] < 0 || p.pool_heads[h] >= p.n_kv_heads) return Bad("kv_append", "pool head outside the kv heads");
  }
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    if (p.slot_page[t] < -1) return Bad("kv_append", "slot page below -1");
    if (p.slot_page[t] >= 0 && (p.slot_offset[t] < 0 || p.slot_offset[t] >= p.page_size))
      return Bad("kv_append", "slot offset outside the page");
    if (p.k_stats != nullptr && p.positions[t] < 0) return Bad("kv_append", "negative position");
  }
  return Status::Ok();
}

Status CheckPagedAttentionArrays(const PagedAttentionParams& p) {
  if (p.n_seqs == 0) return Status::Ok();
  if (p.q_start[0] != 0) return Bad("attention", "q_start[0] must be 0");
  if (p.page_table_start[0] < 0) return Bad("attention", "page_table_start[0] must be >= 0");
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    if (p.q_start[s + 1] < p.q_start[s]) return Bad("attention", "q_start must be non-decreasing");
    if (p.q_pos0[s] < 0 || p.kv_len[s] < 0) return Bad("attention", "negative position or kv_len");
    const int64_t pages = p.page_table_start[s + 1] - p.page_table_start[s];
    if (pages < 0) return Bad("attention", "page_table_start must be non-decreasing");
    if (pages < (p.kv_len[s] + p.page_size - 1) / p.page_size)
      return Bad("attention", "sequence " + std::to_string(s) + " has fewer pages than its kv_len needs");
    if (pages > 0 && p.page_table == nullptr) return Bad("attention", "page_table is required");
    for (int64_t i = p.page_table_start[s]; i < p.page_table_start[s + 1]; ++i) {
      if (p.page_table[i] < 0) return Bad("attention", "negative page id");
    }
  }
  if (p.q_start[p.n_seqs] > 0 && !ProductFits({p.q_start[p.n_seqs], p.n_q_heads, p.head_dim}))
    return Bad("attention", "sizes overflow");
  return Status::Ok();
}

OpTypes OpTypesOf(const EmbeddingParams& p) { return OpTypes{.weight = p.dtype, .row_elems = p.hidden}; }
OpTypes OpTypesOf(const RmsNormParams& p) { return OpTypes{.weight = p.weight_dtype}; }
OpTypes OpTypesOf(const LinearParams& p) {
  return OpTypes{.weight = p.w_dtype, .bias = p.bias ? p.bias_dtype : DType::kF32, .row_elems = p.k};
}

namespace {

Status CheckHeadArrays(const char* op, const int8_t* mode, const int32_t* slot, int64_t n_kv_heads, int64_t n_r,
                       int64_t n_s) {
  for (int64_t h = 0; h < n_kv_heads; ++h) {
    if (mode[h] != kHeadModeRetrieval && mode[h] != kHeadModeStreaming) return Bad(op, "head mode must be 0 or 1");
    const int64_t n = mode[h] == kHeadModeRetrieval ? n_r : n_s;
    if (slot[h] < 0 || slot[h] >= n) return Bad(op, "pool slot outside its pool");
  }
  return Status::Ok();
}

// Pages [start[s], start[s+1]) of each sequence: >= min_pages(s), ids >= min_id.
template <class MinPages>
Status CheckTables(const char* op, const int32_t* table, const int64_t* start, int64_t n_seqs, MinPages min_pages,
                   int32_t min_id) {
  if (start[0] < 0) return Bad(op, "page table starts must be >= 0");
  for (int64_t s = 0; s < n_seqs; ++s) {
    const int64_t pages = start[s + 1] - start[s];
    if (pages < 0) return Bad(op, "page table starts must be non-decreasing");
    if (pages < min_pages(s)) return Bad(op, "sequence " + std::to_string(s) + " has fewer pages than it needs");
    if (pages > 0 && table == nullptr) return Bad(op, "page table is required");
    for (int64_t i = start[s]; i < start[s + 1]; ++i) {
      if (table[i] < min_id) return Bad(op, "page id out of range");
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckSparseAttentionArrays(const SparseAttentionParams& p) {
  const char* op = "sparse_attention";
  if (p.n_seqs == 0) return Status::Ok();
  LSERVE_RETURN_IF_ERROR(
      CheckHeadArrays(op, p.head_mode, p.pool_slot, p.n_kv_heads, p.n_retrieval_heads, p.n_streaming_heads));
  if (p.q_start[0] != 0) return Bad(op, "q_start[0] must be 0");
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    if (p.q_start[s + 1] < p.q_start[s]) return Bad(op, "q_start must be non-decreasing");
    if (p.q_pos0[s] < 0 || p.kv_len[s] < 0) return Bad(op, "negative position or kv_len");
    if (SinkOf(p, s) < 0 || LocalOf(p, s) < 0 || RingPagesOf(p, s) < 0) return Bad(op, "negative window");
  }
  if (p.q_start[p.n_seqs] > 0 && !ProductFits({p.q_start[p.n_seqs], p.n_q_heads, p.head_dim}))
    return Bad(op, "sizes overflow");
  const int64_t ps = p.page_size;
  if (p.n_retrieval_heads > 0) {
    LSERVE_RETURN_IF_ERROR(CheckTables(
        op, p.page_table_r, p.page_table_start_r, p.n_seqs, [&](int64_t s) { return (p.kv_len[s] + ps - 1) / ps; }, 0));
  }
  if (p.n_streaming_heads > 0) {
    // Ring slots may be -1 (no page); the kernel reads only held slots.
    LSERVE_RETURN_IF_ERROR(CheckTables(
        op, p.page_table_s, p.page_table_start_s, p.n_seqs,
        [&](int64_t s) { return p.kv_len[s] > 0 ? p.stream_sink_pages + RingPagesOf(p, s) : 0; }, -1));
    for (int64_t s = 0; s < p.n_seqs; ++s) {
      if (p.kv_len[s] > 0 && RingPagesOf(p, s) < 1) return Bad(op, "a streaming ring needs W >= 1");
    }
  }
  if (p.selected_pages != nullptr) {
    for (int64_t s = 0; s < p.n_seqs; ++s) {
      const int64_t pages = p.n_retrieval_heads > 0 ? p.page_table_start_r[s + 1] - p.page_table_start_r[s] : 0;
      for (int64_t h = 0; h < p.n_kv_heads; ++h) {
        if (p.head_mode[h] != kHeadModeRetrieval) continue;  // the kernel reads retrieval heads' lists only
        const int64_t list = s * p.n_kv_heads + h;
        const int64_t n = p.n_selected[list];
        if (n > p.max_selected) return Bad(op, "n_selected above max_selected");
        const int32_t* sel = p.selected_pages + list * p.max_selected;
        for (int64_t i = 0; i < n; ++i) {
          if (sel[i] < 0 || sel[i] >= pages || (i > 0 && sel[i] <= sel[i - 1]))
            return Bad(op, "selected pages must be ascending page-table indices");
        }
      }
    }
  }
  return Status::Ok();
}

Status CheckSelectPagesArrays(const PageSelectorParams& p) {
  const char* op = "select_pages";
  if (p.n_seqs == 0) return Status::Ok();
  LSERVE_RETURN_IF_ERROR(
      CheckHeadArrays(op, p.head_mode, p.pool_slot, p.n_kv_heads, p.n_retrieval_heads, p.n_kv_heads));
  for (int64_t s = 0; s < p.n_seqs; ++s) {
    if (p.kv_len[s] < 0) return Bad(op, "negative kv_len");
  }
  if (p.n_retrieval_heads > 0) {
    const int64_t ps = p.page_size;
    LSERVE_RETURN_IF_ERROR(CheckTables(
        op, p.page_table_r, p.page_table_start_r, p.n_seqs, [&](int64_t s) { return (p.kv_len[s] + ps - 1) / ps; }, 0));
  }
  return Status::Ok();
}

}  // namespace lserve
