// The CPU backend. Two modes:
//   kReference  every kernel is the scalar reference of src/kernels/ref, on
//               the calling thread: the ground truth path of the tests;
//   kFast       the kernels of src/kernels/cpu (BLAS GEMMs, SIMD, threads)
//               over a ThreadPool of `threads` threads.
// Buffers are 64-byte aligned host memory; weights are viewed in place.
// Everything is synchronous: a kernel method returns when its work is done.
#pragma once

#include <atomic>
#include <memory>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace lserve {

enum class CpuMode : uint8_t { kReference, kFast };
const char* CpuModeName(CpuMode mode);  // "reference", "fast"

// Which implementation runs a kernel call: the pure kernel-choice function
// of the CPU backend (STYLE.md practice 7). Supports() is "not kUnsupported".
enum class CpuKernel : uint8_t { kUnsupported, kReference, kFast };
CpuKernel ChooseCpuKernel(CpuMode mode, KernelOp op, const OpTypes& types);

struct CpuBackendOptions {
  CpuMode mode = CpuMode::kFast;
  int threads = 0;                  // kFast: 0 = hardware concurrency; kReference: ignored (1)
  uint64_t memory_limit_bytes = 0;  // cap on Allocate (0 = the machine's physical memory)
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options = {});
  ~CpuBackend() override;

  CpuMode mode() const { return mode_; }

  DeviceInfo Info() const override;
  Result<DeviceBuffer> Allocate(uint64_t bytes) override;
  Result<DeviceBuffer> ImportWeights(std::span<const uint8_t> bytes, uint64_t alignment,
                                     std::shared_ptr<const void> owner) override;
  Status CopyToDevice(const DeviceBuffer& dst, uint64_t dst_offset, const void* src, uint64_t bytes) override;
  Status CopyToHost(void* dst, const DeviceBuffer& src, uint64_t src_offset, uint64_t bytes) override;
  Status CopyOnDevice(const DeviceBuffer& dst, uint64_t dst_offset, const DeviceBuffer& src, uint64_t src_offset,
                      uint64_t bytes) override;
  Status Memset(const DeviceBuffer& dst, uint64_t offset, uint64_t bytes, uint8_t value) override;
  Status Synchronize() override { return Status::Ok(); }

  bool Supports(KernelOp op, const OpTypes& types) const override;

  Status Embedding(const EmbeddingParams& p) override;
  Status RmsNorm(const RmsNormParams& p) override;
  Status Rope(const RopeParams& p) override;
  Status Linear(const LinearParams& p) override;
  Status Swiglu(const SwigluParams& p) override;
  Status KvAppend(const KvAppendParams& p) override;
  Status PagedAttention(const PagedAttentionParams& p) override;
  Status MergeStates(const MergeStatesParams& p) override;
  Status SparseAttention(const SparseAttentionParams& p) override;
  Status SelectPages(const PageSelectorParams& p) override;
  Status Add(const AddParams& p) override;

 private:
  // The implementation for a call, or Unimplemented naming the op and types.
  Result<CpuKernel> Choose(KernelOp op, const OpTypes& types) const;

  CpuMode mode_;
  uint64_t total_memory_;
  uint64_t memory_limit_;
  // Bytes held by live buffers; shared with their release functions so a
  // buffer may outlive the backend.
  std::shared_ptr<std::atomic<uint64_t>> allocated_;
  std::unique_ptr<ThreadPool> pool_;  // kFast only
};

}  // namespace lserve
