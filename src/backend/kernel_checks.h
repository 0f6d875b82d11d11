// Checks of kernel params at the backend edge, shared by every backend.
//
// CheckXxx(p): the structure of a call (sizes, required pointers,
// divisibility, aliasing rules) without reading any array, so they hold for
// device pointers too. CheckXxxArrays(p): the index arrays a kernel trusts
// (token ids, page slots, query ranges), read from host memory; backends
// whose params live in host memory run them too.
// OpTypesOf(p): the element types of a call, for Backend::Supports.
#pragma once

#include "backend/backend.h"
#include "core/status.h"

namespace lserve {

Status CheckEmbedding(const EmbeddingParams& p);
Status CheckRmsNorm(const RmsNormParams& p);
Status CheckRope(const RopeParams& p);
Status CheckLinear(const LinearParams& p);
Status CheckSwiglu(const SwigluParams& p);
Status CheckKvAppend(const KvAppendParams& p);
Status CheckPagedAttention(const PagedAttentionParams& p);
Status CheckMergeStates(const MergeStatesParams& p);
Status CheckAdd(const AddParams& p);
Status CheckSparseAttention(const SparseAttentionParams& p);
Status CheckSelectPages(const PageSelectorParams& p);

// 0 <= ids[i] < vocab.
Status CheckEmbeddingArrays(const EmbeddingParams& p);
// pool_heads inside [0, n_kv_heads); slot pages >= -1; offsets inside a page.
Status CheckKvAppendArrays(const KvAppendParams& p);
// q_start non-decreasing from 0, positions and kv_len non-negative, each
// sequence's page range large enough for its kv_len.
Status CheckPagedAttentionArrays(const PagedAttentionParams& p);
// As CheckPagedAttentionArrays for both pools (the retrieval tables cover
// kv_len, each streaming table holds S + W slots), head modes 0/1 with pool
// slots inside their pool, selections ascending and inside the table.
Status CheckSparseAttentionArrays(const SparseAttentionParams& p);
// kv_len >= 0, retrieval tables covering kv_len, pool slots inside the pool.
Status CheckSelectPagesArrays(const PageSelectorParams& p);

OpTypes OpTypesOf(const EmbeddingParams& p);
OpTypes OpTypesOf(const RmsNormParams& p);
OpTypes OpTypesOf(const LinearParams& p);  // bias = bias_dtype only when bias is set

}  // namespace lserve
