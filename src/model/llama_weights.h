// The weights of a Llama-family model on a backend.
//
// Every tensor keeps the dtype it is stored in (f32/f16/bf16 from
// safetensors; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K from GGUF): the
// kernels read all of them. A tensor is converted to f32 at load only when
// the backend has no kernel for its stored type (Backend::Supports), i.e. on
// the CPU: F64 tensors, and norm weights or biases in a block-quantized type
// (the RMSNorm and bias paths read plain floats only). On the CPU the
// weights are views of the memory-mapped file (no copy) unless converted or
// misaligned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "formats/model_source.h"

namespace lserve {

// One weight tensor on the backend.
struct WeightTensor {
  DeviceBuffer buffer;         // device copy or in-place view; empty when absent
  DType dtype = DType::kF32;   // element type as the kernels will read it
  std::vector<int64_t> shape;  // torch order
  std::string name;            // HF name, for messages

  bool present() const { return buffer.data() != nullptr; }
  const void* data() const { return buffer.data(); }
};

// A linear layer y = x W^T + b: W [out, in], b [out] or absent.
struct LinearWeights {
  WeightTensor weight;
  WeightTensor bias;
  int64_t out_features() const { return weight.shape.at(0); }
  int64_t in_features() const { return weight.shape.at(1); }
};

struct LlamaLayerWeights {
  WeightTensor input_norm;           // [hidden]
  LinearWeights q, k, v, o;          // q [nq*D, hidden], k/v [nkv*D, hidden], o [hidden, nq*D]
  WeightTensor post_attention_norm;  // [hidden]
  LinearWeights gate, up, down;      // gate/up [inter, hidden], down [hidden, inter]
};

struct LlamaWeights {
  WeightTensor embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  WeightTensor final_norm;  // [hidden]
  WeightTensor untied_lm_head;    // [vocab, hidden]; absent when the embeddings are tied
  bool tied_embeddings = false;

  // The output projection: the embedding table when tied.
  const WeightTensor& lm_head() const { return tied_embeddings ? embed_tokens : untied_lm_head; }
  // Bytes of all weight tensors as the kernels read them.
  uint64_t bytes() const;
  // Tensors converted to f32 at load (names), for `inspect`-style reports.
  std::vector<std::string> converted;
};

// Places every tensor that ExpectedTensorShapes(source.config) names on
// `backend`, checking names, shapes and byte sizes (InvalidArgument naming
// the tensor), and that the backend runs each op with the tensor's dtype
// (after the f32 fallback above; Unimplemented otherwise).
Result<LlamaWeights> LoadLlamaWeights(const ModelSource& source, Backend& backend);

}  // namespace lserve
