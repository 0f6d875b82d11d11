// Backend: the one interface through which the model reaches a device (the
// CPU now, CUDA later), in the manner of ggml-backend. It owns device memory
// (buffers), copies between host and device, answers capability queries and
// runs one kernel family per method, each taking that family's params struct
// (src/kernels/ref/<family>.h documents shapes and semantics).
//
// Contract of the kernel methods:
// - every pointer in a params struct is a device address: data() of a buffer
//   of this backend (plus an offset), or host memory on a backend whose
//   DeviceInfo says host_addressable (the CPU);
// - the params are checked at this edge (sizes, dtypes, required pointers,
//   divisibility: backend/kernel_checks.h) and a bad call returns
//   InvalidArgument / Unimplemented instead of reaching a kernel; what a
//   check cannot see (page ids inside the pool, buffer extents) is the
//   caller's precondition;
// - kernels run in the order they are called; results are visible to
//   CopyToHost after Synchronize() (the CPU backend is synchronous).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/kv_append.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/merge.h"
#include "kernels/ref/page_selector.h"
#include "kernels/ref/rmsnorm.h"
#include "kernels/ref/rope.h"
#include "kernels/ref/sparse_attention.h"
#include "kernels/ref/swiglu.h"

namespace lserve {

// The kernel families (DESIGN.md §5) a backend runs.
enum class KernelOp : uint8_t {
  kEmbedding,
  kRmsNorm,
  kRope,
  kLinear,
  kSwiglu,
  kKvAppend,
  kPagedAttention,
  kMergeStates,
  kAdd,
  kSparseAttention,
  kSelectPages,
};
const char* KernelOpName(KernelOp op);  // "embedding", "rmsnorm", ...

// The element types (and the one shape fact) of a kernel call that decide
// whether a backend can run it. Fields an op does not use are ignored.
struct OpTypes {
  DType weight = DType::kF32;      // embedding table, RMSNorm weight, linear weight
  DType bias = DType::kF32;        // linear bias, when there is one
  DType activation = DType::kF32;  // x / q / k / v / out
  DType kv = DType::kF32;          // KV cache elements
  int64_t row_elems = 0;           // elements per weight row (embedding hidden, linear k); 0 = not checked
};

struct DeviceInfo {
  std::string name;                 // "cpu (fast, 2 threads)"
  std::string kind;                 // "cpu", later "cuda"
  uint64_t total_memory_bytes = 0;  // physical memory of the device (host RAM for the CPU)
  uint64_t memory_limit_bytes = 0;  // what this backend may allocate at most
  uint64_t allocated_bytes = 0;     // held by live buffers now (views of host memory excluded)
  int threads = 1;                  // CPU threads the kernels use
  bool host_addressable = false;    // buffers and host memory are addressable by kernels and host alike
};

// A block of device memory. Move-only; returns its memory to the backend
// when destroyed (safe even after the backend itself is gone). An empty
// buffer (default-constructed or moved-from) has data() == nullptr.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // For backends: `release` runs once when the buffer dies (null: nothing to free).
  DeviceBuffer(void* data, uint64_t size, bool host_visible, std::function<void()> release)
      : data_(data), size_(size), host_visible_(host_visible), release_(std::move(release)) {}
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      data_ = o.data_;
      size_ = o.size_;
      host_visible_ = o.host_visible_;
      release_ = std::move(o.release_);
      o.data_ = nullptr;
      o.size_ = 0;
      o.release_ = nullptr;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }  // device address
  uint64_t size() const { return size_; }
  // The host may read and write data() directly (CPU buffers).
  bool host_visible() const { return host_visible_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }

  void Reset() {
    if (release_) release_();
    release_ = nullptr;
    data_ = nullptr;
    size_ = 0;
  }

 private:
  void* data_ = nullptr;
  uint64_t size_ = 0;
  bool host_visible_ = false;
  std::function<void()> release_;
};

// Elementwise sum, the residual connections of a transformer block:
//   out[i] = a[i] + b[i]
// (a one-line kernel that lives in the backends until src/kernels grows an
// elementwise family).
struct AddParams {
  const float* a;  // [n] f32
  const float* b;  // [n] f32
  float* out;      // [n] f32; may alias a or b
  int64_t n;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceInfo Info() const = 0;

  // --- memory -------------------------------------------------------------
  // A new buffer of `bytes` (aligned to 64 bytes, contents unspecified).
  // ResourceExhausted past the backend's memory limit or when the device
  // refuses; InvalidArgument for 0 bytes.
  virtual Result<DeviceBuffer> Allocate(uint64_t bytes) = 0;
  // Read-only weights: a buffer holding `bytes`. A host-addressable backend
  // views them in place when their address is a multiple of `alignment`
  // (`owner` keeps the memory alive as long as the buffer), else copies
  // them; other backends copy them to the device.
  virtual Result<DeviceBuffer> ImportWeights(std::span<const uint8_t> bytes, uint64_t alignment,
                                             std::shared_ptr<const void> owner) = 0;
  // Copies; OutOfRange when [offset, offset + bytes) leaves the buffer.
  virtual Status CopyToDevice(const DeviceBuffer& dst, uint64_t dst_offset, const void* src, uint64_t bytes) = 0;
  virtual Status CopyToHost(void* dst, const DeviceBuffer& src, uint64_t src_offset, uint64_t bytes) = 0;
  virtual Status CopyOnDevice(const DeviceBuffer& dst, uint64_t dst_offset, const DeviceBuffer& src,
                              uint64_t src_offset, uint64_t bytes) = 0;
  virtual Status Memset(const DeviceBuffer& dst, uint64_t offset, uint64_t bytes, uint8_t value) = 0;
  // Waits until every kernel and copy issued so far has finished.
  virtual Status Synchronize() = 0;

  // --- capability ---------------------------------------------------------
  // True when `op` runs with these element types. Derived from the backend's
  // pure kernel-choice function (e.g. ChooseCpuKernel).
  virtual bool Supports(KernelOp op, const OpTypes& types) const = 0;

  // --- kernels (one per family) -------------------------------------------
  virtual Status Embedding(const EmbeddingParams& p) = 0;
  virtual Status RmsNorm(const RmsNormParams& p) = 0;
  virtual Status Rope(const RopeParams& p) = 0;
  virtual Status Linear(const LinearParams& p) = 0;
  virtual Status Swiglu(const SwigluParams& p) = 0;
  virtual Status KvAppend(const KvAppendParams& p) = 0;
  virtual Status PagedAttention(const PagedAttentionParams& p) = 0;
  virtual Status MergeStates(const MergeStatesParams& p) = 0;
  virtual Status Add(const AddParams& p) = 0;
  virtual Status SparseAttention(const SparseAttentionParams& p) = 0;
  virtual Status SelectPages(const PageSelectorParams& p) = 0;
};

}  // namespace lserve
