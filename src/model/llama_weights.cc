#include "model/llama_weights.h"

#include <cstring>
#include <map>
#include <unordered_map>

#include "formats/gguf_quant.h"

namespace lserve {
namespace {

// How a tensor is used decides which kernel must accept its dtype.
enum class WeightUse { kEmbedding, kNorm, kLinearWeight, kBias };

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool BackendAccepts(const Backend& backend, WeightUse use, DType dtype, const std::vector<int64_t>& shape) {
  const int64_t row = shape.empty() ? 0 : shape.back();
  switch (use) {
    case WeightUse::kEmbedding:
      return backend.Supports(KernelOp::kEmbedding, OpTypes{.weight = dtype, .row_elems = row}) &&
             backend.Supports(KernelOp::kLinear, OpTypes{.weight = dtype, .row_elems = row});
    case WeightUse::kNorm:
      return backend.Supports(KernelOp::kRmsNorm, OpTypes{.weight = dtype});
    case WeightUse::kLinearWeight:
      return backend.Supports(KernelOp::kLinear, OpTypes{.weight = dtype, .row_elems = row});
    case WeightUse::kBias:
      return backend.Supports(KernelOp::kLinear, OpTypes{.bias = dtype});
  }
  return false;
}

// The tensor as f32 (F64 is narrowed as torch's .float() does).
Result<std::vector<float>> ToF32(const TensorInfo& t) {
  if (t.dtype != DType::kF64) return DequantizeTensor(t);
  const uint64_t n = static_cast<uint64_t>(t.num_elements());
  if (t.data.size() != n * 8) return InvalidArgument("tensor '" + t.name + "': byte size does not match its shape");
  std::vector<float> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    double d;
    std::memcpy(&d, t.data.data() + i * 8, 8);
    out[i] = static_cast<float>(d);
  }
  return out;
}

class WeightLoader {
 public:
  WeightLoader(const ModelSource& source, Backend& backend) : source_(source), backend_(backend) {
    for (const auto& t : source.tensors) by_name_[t.name] = &t;
  }

  Result<WeightTensor> Load(const std::string& name, WeightUse use, std::vector<std::string>* converted) {
    auto expected = expected_.find(name);
    if (expected == expected_.end()) return Internal("weight '" + name + "' is not part of this architecture");
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return InvalidArgument("model has no tensor '" + name + "'");
    const TensorInfo& t = *it->second;
    if (t.shape != expected->second) {
      return InvalidArgument("tensor '" + name + "' has shape " + ShapeText(t.shape) + " where the config implies " +
                             ShapeText(expected->second));
    }
    const auto bytes = DTypeBytesFor(t.dtype, static_cast<uint64_t>(t.num_elements()));
    if (t.dtype != DType::kF64 && (!bytes || *bytes != t.data.size())) {
      return InvalidArgument("tensor '" + name + "' holds " + std::to_string(t.data.size()) +
                             " bytes, which does not match its shape and type " + std::string(DTypeName(t.dtype)));
    }

    WeightTensor w;
    w.name = name;
    w.shape = t.shape;
    if (BackendAccepts(backend_, use, t.dtype, t.shape)) {
      w.dtype = t.dtype;
      const uint64_t align = DTypeIsQuantized(t.dtype) ? 2 : static_cast<uint64_t>(DTypeBlockBytes(t.dtype));
      LSERVE_ASSIGN_OR_RETURN(w.buffer, backend_.ImportWeights(t.data, align, source_.storage));
      return w;
    }
    // The backend has no kernel for the stored type: widen to f32 once.
    if (!BackendAccepts(backend_, use, DType::kF32, t.shape) || !(CanDequantize(t.dtype) || t.dtype == DType::kF64)) {
      return Unimplemented("tensor '" + name + "' of type " + std::string(DTypeName(t.dtype)) +
                           " has no kernel on " + backend_.Info().name);
    }
    LSERVE_ASSIGN_OR_RETURN(std::vector<float> f32, ToF32(t));
    w.dtype = DType::kF32;
    LSERVE_ASSIGN_OR_RETURN(w.buffer, backend_.Allocate(f32.size() * sizeof(float)));
    LSERVE_RETURN_IF_ERROR(backend_.CopyToDevice(w.buffer, 0, f32.data(), f32.size() * sizeof(float)));
    converted->push_back(name + " (" + std::string(DTypeName(t.dtype)) + " -> F32)");
    return w;
  }

  Result<LinearWeights> LoadLinear(const std::string& prefix, bool with_bias, std::vector<std::string>* converted) {
    LinearWeights l;
    LSERVE_ASSIGN_OR_RETURN(l.weight, Load(prefix + ".weight", WeightUse::kLinearWeight, converted));
    if (with_bias) {
      LSERVE_ASSIGN_OR_RETURN(l.bias, Load(prefix + ".bias", WeightUse::kBias, converted));
    }
    return l;
  }

 private:
  const ModelSource& source_;
  Backend& backend_;
  std::unordered_map<std::string, const TensorInfo*> by_name_;
  const std::map<std::string, std::vector<int64_t>> expected_ = ExpectedTensorShapes(source_.config);
};

uint64_t TensorBytes(const WeightTensor& w) { return w.present() ? w.buffer.size() : 0; }

}  // namespace

uint64_t LlamaWeights::bytes() const {
  uint64_t n = TensorBytes(embed_tokens) + TensorBytes(final_norm) + TensorBytes(untied_lm_head);
  for (const auto& l : layers) {
    n += TensorBytes(l.input_norm) + TensorBytes(l.post_attention_norm);
    for (const LinearWeights* lin : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      n += TensorBytes(lin->weight) + TensorBytes(lin->bias);
  }
  return n;
}

Result<LlamaWeights> LoadLlamaWeights(const ModelSource& source, Backend& backend) {
  const ModelConfig& c = source.config;
  LSERVE_RETURN_IF_ERROR(c.Validate());
  WeightLoader loader(source, backend);
  LlamaWeights w;
  std::vector<std::string>* conv = &w.converted;
  LSERVE_ASSIGN_OR_RETURN(w.embed_tokens, loader.Load("model.embed_tokens.weight", WeightUse::kEmbedding, conv));
  // Mirrors ExpectedTensorShapes: Llama's o_proj has a bias with
  // attention_bias, Qwen2's never does.
  const bool o_bias = c.attention_bias && c.architecture == Architecture::kLlama;
  w.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LlamaLayerWeights& l = w.layers[static_cast<size_t>(i)];
    LSERVE_ASSIGN_OR_RETURN(l.input_norm, loader.Load(p + "input_layernorm.weight", WeightUse::kNorm, conv));
    LSERVE_ASSIGN_OR_RETURN(l.q, loader.LoadLinear(p + "self_attn.q_proj", c.attention_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.k, loader.LoadLinear(p + "self_attn.k_proj", c.attention_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.v, loader.LoadLinear(p + "self_attn.v_proj", c.attention_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.o, loader.LoadLinear(p + "self_attn.o_proj", o_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.post_attention_norm,
                            loader.Load(p + "post_attention_layernorm.weight", WeightUse::kNorm, conv));
    LSERVE_ASSIGN_OR_RETURN(l.gate, loader.LoadLinear(p + "mlp.gate_proj", c.mlp_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.up, loader.LoadLinear(p + "mlp.up_proj", c.mlp_bias, conv));
    LSERVE_ASSIGN_OR_RETURN(l.down, loader.LoadLinear(p + "mlp.down_proj", c.mlp_bias, conv));
  }
  LSERVE_ASSIGN_OR_RETURN(w.final_norm, loader.Load("model.norm.weight", WeightUse::kNorm, conv));
  w.tied_embeddings = c.tie_word_embeddings;
  if (!c.tie_word_embeddings) {
    LSERVE_ASSIGN_OR_RETURN(w.untied_lm_head, loader.Load("lm_head.weight", WeightUse::kLinearWeight, conv));
  }
  return w;
}

}  // namespace lserve
