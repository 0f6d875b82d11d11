// LoadGgufModel: a GGUF file of the `llama` or `qwen2` architecture seen as
// the engine sees every checkpoint: a ModelConfig (read from the
// `<arch>.*` and `tokenizer.ggml.*` metadata as transformers' GGUF loader
// reads it) and tensors under their Hugging Face names, in torch order, in
// the Hugging Face layout.
//
// The layout point: llama.cpp's convert_hf_to_gguf.py permutes the rows of
// the llama Q and K projections (`permute(w, n_head, n_head_kv)`) so that
// ggml's interleaved ("GPT-J") RoPE gives the model's rotate-half ("NeoX")
// RoPE. Within each head of d rows, GGUF row 2i+h holds HF row h*d/2 + i
// (h in {0,1}, i < d/2). The loader undoes this (Q rows per attention head,
// K rows per KV head, weights and biases), so the engine applies rotate-half
// RoPE to every model whatever its file format. A row is a whole number of
// quantization blocks, so moving rows is exact for quantized tensors too.
// qwen2 files are not permuted (llama.cpp runs them with NeoX RoPE).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/tensor_info.h"

namespace lserve {

struct GgufModel {
  ModelConfig config;
  // HF names ("model.layers.0.self_attn.q_proj.weight"), torch order shapes
  // (ggml's ne reversed), in file order. Exactly the set that
  // ExpectedTensorShapes(config) names, with those shapes.
  std::vector<TensorInfo> tensors;
  // Per tensor of `tensors`, the ggml type name as stored ("Q4_1", "F32").
  std::vector<std::string> stored_dtypes;
  // `rope_freqs.weight` when the file has it: llama3-style RoPE frequency
  // factors, f32 [head_dim / 2]. llama.cpp's converter bakes rope_scaling of
  // type llama3 into this tensor instead of writing it to the metadata, so
  // config.rope_scaling is then kNone and the engine must divide each
  // inverse frequency by its factor:
  //   inv_freq[i] = rope_theta^(-2i / head_dim) / rope_freqs[i],  i < head_dim/2
  // (what ggml_rope_ext does with its freq_factors argument). Absent when
  // the file has no such tensor.
  std::optional<TensorInfo> rope_freqs;
  // Keeps the memory map (for the views in `tensors`) alive.
  std::shared_ptr<const GgufFile> file;
  // Buffers of the tensors the loader rewrote (un-permuted Q/K rows); the
  // views in `tensors` point into them. Shared, so copies stay valid.
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> owned_buffers;
};

// Maps the metadata and tensors of `file`; checks the tensor set and shapes
// against ExpectedTensorShapes(config) and runs ModelConfig::Validate().
// InvalidArgument for missing/inconsistent metadata or tensors; Unimplemented
// for other architectures, partial rotary embeddings, unsupported rope
// scaling and tensor types this build cannot load.
Result<GgufModel> LoadGgufModel(std::shared_ptr<const GgufFile> file);

// The Hugging Face name of a ggml tensor name of the llama/qwen2 layout
// ("blk.3.ffn_gate.weight" -> "model.layers.3.mlp.gate_proj.weight"), or ""
// when the name is not one of them.
std::string HfTensorName(std::string_view gguf_name);

// Reorders the rows of `src` (rows of `row_bytes` bytes; n_rows divisible by
// 2*n_heads) from the GGUF llama order to the HF order, see above.
void UnpermuteGgufRows(const uint8_t* src, uint8_t* dst, int64_t n_rows, int64_t row_bytes, int64_t n_heads);

}  // namespace lserve
