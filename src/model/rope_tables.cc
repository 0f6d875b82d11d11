#include "model/rope_tables.h"

#include <cstring>
#include <string>

#include "formats/gguf.h"

namespace lserve {
namespace {

constexpr uint32_t kGgmlTypeF32 = 0;

Result<std::vector<float>> ReadGgufRopeFreqs(const ModelSource& source) {
  if (source.gguf == nullptr) return std::vector<float>();
  const GgufTensorInfo* t = source.gguf->FindTensor("rope_freqs.weight");
  if (t == nullptr) return std::vector<float>();
  const int64_t half = source.config.head_dim / 2;
  if (t->ggml_type != kGgmlTypeF32 || t->num_elements() != half ||
      t->data.size() != static_cast<uint64_t>(half) * sizeof(float)) {
    return InvalidArgument("rope_freqs.weight must be F32 [" + std::to_string(half) + "]");
  }
  std::vector<float> freqs(static_cast<size_t>(half));
  std::memcpy(freqs.data(), t->data.data(), t->data.size());
  return freqs;
}

}  // namespace

Result<RopeTables> RopeTables::Create(const ModelSource& source) {
  RopeTables r;
  r.config_ = source.config;
  LSERVE_ASSIGN_OR_RETURN(r.gguf_freqs_, ReadGgufRopeFreqs(source));
  r.dynamic_ = RopeTableDependsOnSeqLen(source.config);
  // The table at length 1 is the fixed one (and the unscaled one when dynamic):
  // computing it here validates the rope parameters before any weight loads.
  LSERVE_ASSIGN_OR_RETURN(r.fixed_, r.ForSeqLen(1));
  return r;
}

Result<RopeTable> RopeTables::ForSeqLen(int64_t seq_len) const {
  if (!dynamic_ && !fixed_.inv_freq.empty()) return fixed_;
  return ComputeRopeTable(config_, gguf_freqs_.empty() ? nullptr : gguf_freqs_.data(), seq_len);
}

}  // namespace lserve
