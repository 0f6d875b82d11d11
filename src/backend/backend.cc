#include "backend/backend.h"

namespace lserve {

const char* KernelOpName(KernelOp op) {
  switch (op) {
    case KernelOp::kEmbedding: return "embedding";
    case KernelOp::kRmsNorm: return "rmsnorm";
    case KernelOp::kRope: return "rope";
    case KernelOp::kLinear: return "linear";
    case KernelOp::kSwiglu: return "swiglu";
    case KernelOp::kKvAppend: return "kv_append";
    case KernelOp::kPagedAttention: return "attention";
    case KernelOp::kMergeStates: return "merge";
    case KernelOp::kAdd: return "add";
    case KernelOp::kSparseAttention: return "sparse_attention";
    case KernelOp::kSelectPages: return "select_pages";
  }
  return "?";
}

}  // namespace lserve
