#include "backend/cpu_backend.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "backend/kernel_checks.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/kv_append.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/merge.h"
#include "kernels/cpu/page_selector.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sparse_attention.h"
#include "kernels/cpu/swiglu.h"

namespace lserve {
namespace {

constexpr uint64_t kBufferAlignment = 64;
// Below this many elements a residual add is cheaper than waking the workers.
constexpr int64_t kParallelAddMin = 1 << 15;

bool IsPlainFloat(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

uint64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

Status CheckRange(const DeviceBuffer& b, uint64_t offset, uint64_t bytes, const char* what) {
  if (b.data() == nullptr && bytes > 0) return InvalidArgument(std::string(what) + ": empty buffer");
  if (offset > b.size() || bytes > b.size() - offset) {
    return OutOfRange(std::string(what) + ": [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                      ") leaves a buffer of " + std::to_string(b.size()) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

const char* CpuModeName(CpuMode mode) { return mode == CpuMode::kReference ? "reference" : "fast"; }

CpuKernel ChooseCpuKernel(CpuMode mode, KernelOp op, const OpTypes& t) {
  // The CPU keeps activations and the KV cache in f32.
  if (t.activation != DType::kF32) return CpuKernel::kUnsupported;
  bool supported = false;
  switch (op) {
    case KernelOp::kEmbedding:
      supported = EmbeddingSupports(t.weight, t.row_elems > 0 ? t.row_elems : DTypeBlockElems(t.weight));
      break;
    case KernelOp::kRmsNorm:
      supported = IsPlainFloat(t.weight);
      break;
    case KernelOp::kLinear:
      supported = LinearSupports(t.weight, t.row_elems > 0 ? t.row_elems : DTypeBlockElems(t.weight)) &&
                  LinearSupportsBias(t.bias);
      break;
    case KernelOp::kKvAppend:
    case KernelOp::kPagedAttention:
    case KernelOp::kSparseAttention:
    case KernelOp::kSelectPages:
      supported = t.kv == DType::kF32;
      break;
    case KernelOp::kRope:
    case KernelOp::kSwiglu:
    case KernelOp::kMergeStates:
    case KernelOp::kAdd:
      supported = true;
      break;
  }
  if (!supported) return CpuKernel::kUnsupported;
  return mode == CpuMode::kReference ? CpuKernel::kReference : CpuKernel::kFast;
}

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : mode_(options.mode),
      total_memory_(PhysicalMemoryBytes()),
      memory_limit_(options.memory_limit_bytes ? options.memory_limit_bytes : PhysicalMemoryBytes()),
      allocated_(std::make_shared<std::atomic<uint64_t>>(0)) {
  if (mode_ == CpuMode::kFast) pool_ = std::make_unique<ThreadPool>(options.threads);
}

CpuBackend::~CpuBackend() = default;

DeviceInfo CpuBackend::Info() const {
  const int threads = pool_ ? pool_->size() : 1;
  DeviceInfo info;
  info.name = std::string("cpu (") + CpuModeName(mode_) + ", " + std::to_string(threads) +
              (threads == 1 ? " thread)" : " threads)");
  info.kind = "cpu";
  info.total_memory_bytes = total_memory_;
  info.memory_limit_bytes = memory_limit_;
  info.allocated_bytes = allocated_->load();
  info.threads = threads;
  info.host_addressable = true;
  return info;
}

Result<DeviceBuffer> CpuBackend::Allocate(uint64_t bytes) {
  if (bytes == 0) return InvalidArgument("Allocate: 0 bytes");
  if (bytes > UINT64_MAX - kBufferAlignment) return ResourceExhausted("Allocate: size overflows");
  const uint64_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  // Reserve against the limit first so that concurrent allocations cannot overshoot it.
  const uint64_t before = allocated_->fetch_add(rounded);
  if (before + rounded > memory_limit_ || before + rounded < before) {
    allocated_->fetch_sub(rounded);
    return ResourceExhausted("cpu backend: allocating " + std::to_string(bytes) + " bytes would exceed the limit of " +
                             std::to_string(memory_limit_) + " (" + std::to_string(before) + " in use)");
  }
  void* p = std::aligned_alloc(kBufferAlignment, rounded);
  if (p == nullptr) {
    allocated_->fetch_sub(rounded);
    return ResourceExhausted("cpu backend: the system refused " + std::to_string(bytes) + " bytes");
  }
  auto counter = allocated_;
  return DeviceBuffer(p, bytes, /*host_visible=*/true, [p, rounded, counter] {
    std::free(p);
    counter->fetch_sub(rounded);
  });
}

Result<DeviceBuffer> CpuBackend::ImportWeights(std::span<const uint8_t> bytes, uint64_t alignment,
                                               std::shared_ptr<const void> owner) {
  if (bytes.empty()) return InvalidArgument("ImportWeights: no bytes");
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return InvalidArgument("ImportWeights: alignment must be a power of two");
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignment == 0) {
    // View in place: the kernels only read weights.
    return DeviceBuffer(const_cast<uint8_t*>(bytes.data()), bytes.size(), /*host_visible=*/true,
                        [owner = std::move(owner)] {});
  }
  LSERVE_ASSIGN_OR_RETURN(DeviceBuffer copy, Allocate(bytes.size()));
  std::memcpy(copy.data(), bytes.data(), bytes.size());
  return copy;
}

Status CpuBackend::CopyToDevice(const DeviceBuffer& dst, uint64_t dst_offset, const void* src, uint64_t bytes) {
  LSERVE_RETURN_IF_ERROR(CheckRange(dst, dst_offset, bytes, "CopyToDevice"));
  if (bytes) std::memcpy(static_cast<uint8_t*>(dst.data()) + dst_offset, src, bytes);
  return Status::Ok();
}

Status CpuBackend::CopyToHost(void* dst, const DeviceBuffer& src, uint64_t src_offset, uint64_t bytes) {
  LSERVE_RETURN_IF_ERROR(CheckRange(src, src_offset, bytes, "CopyToHost"));
  if (bytes) std::memcpy(dst, static_cast<const uint8_t*>(src.data()) + src_offset, bytes);
  return Status::Ok();
}

Status CpuBackend::CopyOnDevice(const DeviceBuffer& dst, uint64_t dst_offset, const DeviceBuffer& src,
                                uint64_t src_offset, uint64_t bytes) {
  LSERVE_RETURN_IF_ERROR(CheckRange(dst, dst_offset, bytes, "CopyOnDevice"));
  LSERVE_RETURN_IF_ERROR(CheckRange(src, src_offset, bytes, "CopyOnDevice"));
  if (bytes) {
    std::memmove(static_cast<uint8_t*>(dst.data()) + dst_offset,
                 static_cast<const uint8_t*>(src.data()) + src_offset, bytes);
  }
  return Status::Ok();
}

Status CpuBackend::Memset(const DeviceBuffer& dst, uint64_t offset, uint64_t bytes, uint8_t value) {
  LSERVE_RETURN_IF_ERROR(CheckRange(dst, offset, bytes, "Memset"));
  if (bytes) std::memset(static_cast<uint8_t*>(dst.data()) + offset, value, bytes);
  return Status::Ok();
}

bool CpuBackend::Supports(KernelOp op, const OpTypes& types) const {
  return ChooseCpuKernel(mode_, op, types) != CpuKernel::kUnsupported;
}

Result<CpuKernel> CpuBackend::Choose(KernelOp op, const OpTypes& types) const {
  const CpuKernel k = ChooseCpuKernel(mode_, op, types);
  if (k == CpuKernel::kUnsupported) {
    std::string what = std::string(KernelOpName(op)) + " with weights " + std::string(DTypeName(types.weight));
    if (types.row_elems > 0) what += " (rows of " + std::to_string(types.row_elems) + ")";
    if (op == KernelOp::kLinear) what += ", bias " + std::string(DTypeName(types.bias));
    return Unimplemented("cpu backend: no kernel for " + what);
  }
  return k;
}

// Each kernel method: structural check, host-array check where the kernel
// trusts indices, dtype choice, then the kernel.

Status CpuBackend::Embedding(const EmbeddingParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckEmbedding(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kEmbedding, OpTypesOf(p)));
  LSERVE_RETURN_IF_ERROR(CheckEmbeddingArrays(p));
  if (p.n == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    EmbeddingCpu(p, *pool_);
  } else {
    EmbeddingRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::RmsNorm(const RmsNormParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckRmsNorm(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kRmsNorm, OpTypesOf(p)));
  if (p.n == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    RmsNormCpu(p, *pool_);
  } else {
    RmsNormRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::Rope(const RopeParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckRope(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kRope, OpTypes{}));
  if (p.n == 0 || (p.q == nullptr && p.k == nullptr)) return Status::Ok();
  if (k == CpuKernel::kFast) {
    RopeCpu(p, *pool_);
  } else {
    RopeRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::Linear(const LinearParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckLinear(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kLinear, OpTypesOf(p)));
  if (p.m == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    LinearCpu(p, *pool_);
  } else {
    LinearRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::Swiglu(const SwigluParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckSwiglu(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kSwiglu, OpTypes{}));
  if (p.m == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    SwigluCpu(p, *pool_);
  } else {
    SwigluRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::KvAppend(const KvAppendParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckKvAppend(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kKvAppend, OpTypes{}));
  LSERVE_RETURN_IF_ERROR(CheckKvAppendArrays(p));
  if (p.n_tokens == 0 || p.n_pool_heads == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    KvAppendCpu(p, *pool_);
  } else {
    KvAppendRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::PagedAttention(const PagedAttentionParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckPagedAttention(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kPagedAttention, OpTypes{}));
  LSERVE_RETURN_IF_ERROR(CheckPagedAttentionArrays(p));
  if (p.n_seqs == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    PagedAttentionCpu(p, *pool_);
  } else {
    PagedAttentionRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::MergeStates(const MergeStatesParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckMergeStates(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kMergeStates, OpTypes{}));
  if (p.n == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    MergeStatesCpu(p, *pool_);
  } else {
    MergeStatesRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::Add(const AddParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckAdd(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kAdd, OpTypes{}));
  auto add = [&p](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) p.out[i] = p.a[i] + p.b[i];
  };
  if (k == CpuKernel::kFast && p.n >= kParallelAddMin) {
    pool_->ParallelFor(p.n, [&add](int64_t begin, int64_t end) { add(begin, end); });
  } else {
    add(0, p.n);
  }
  return Status::Ok();
}

Status CpuBackend::SparseAttention(const SparseAttentionParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckSparseAttention(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kSparseAttention, OpTypes{}));
  LSERVE_RETURN_IF_ERROR(CheckSparseAttentionArrays(p));
  if (p.n_seqs == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    SparseAttentionCpu(p, *pool_);
  } else {
    SparseAttentionRef(p);
  }
  return Status::Ok();
}

Status CpuBackend::SelectPages(const PageSelectorParams& p) {
  LSERVE_RETURN_IF_ERROR(CheckSelectPages(p));
  LSERVE_ASSIGN_OR_RETURN(CpuKernel k, Choose(KernelOp::kSelectPages, OpTypes{}));
  LSERVE_RETURN_IF_ERROR(CheckSelectPagesArrays(p));
  if (p.n_seqs == 0) return Status::Ok();
  if (k == CpuKernel::kFast) {
    SelectPagesCpu(p, *pool_);
  } else {
    SelectPagesRef(p);
  }
  return Status::Ok();
}

}  // namespace lserve
