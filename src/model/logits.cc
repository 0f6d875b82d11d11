#include "model/logits.h"

#include "model/layer_forward.h"

namespace lserve {

Status ComputeLogits(Backend& backend, const LlamaWeights& w, const ModelDims& d, ForwardScratch& s,
                     int64_t n_rows, ForwardOutput* out) {
  out->vocab = d.vocab;
  out->logits.assign(static_cast<size_t>(n_rows * d.vocab), 0.0f);
  if (n_rows == 0) return Status::Ok();
  float* normed = s.normed.as<float>();
  LSERVE_RETURN_IF_ERROR(backend.RmsNorm(RmsNormParams{.x = s.hidden.as<float>(), .weight = w.final_norm.data(),
                                                       .weight_dtype = w.final_norm.dtype, .out = normed,
                                                       .n = n_rows, .dim = d.hidden, .eps = d.rms_eps}));
  const WeightTensor& head = w.lm_head();
  LSERVE_RETURN_IF_ERROR(backend.Linear(LinearParams{.x = normed,
                                                     .w = head.data(),
                                                     .w_dtype = head.dtype,
                                                     .bias = nullptr,
                                                     .bias_dtype = DType::kF32,
                                                     .y = s.logits.as<float>(),
                                                     .m = n_rows,
                                                     .n = d.vocab,
                                                     .k = d.hidden}));
  LSERVE_RETURN_IF_ERROR(backend.Synchronize());
  return backend.CopyToHost(out->logits.data(), s.logits, 0, out->logits.size() * sizeof(float));
}

}  // namespace lserve
