#include "model/llama_model.h"

#include <string>

#include "model/forward_step.h"
#include "model/kv_storage.h"
#include "model/layer_forward.h"
#include "model/logits.h"
#include "model/rope_tables.h"

namespace lserve {

struct LlamaModel::State {
  Backend* backend = nullptr;
  ModelConfig config;
  ModelDims dims;
  LlamaWeights weights;
  RopeTables rope;
  KvStorage kv;
  ForwardScratch scratch;
};

namespace {

Result<KvCacheConfig> MakeKvCacheConfig(const ModelConfig& c, const ModelOptions& o) {
  if (o.kv_cache_tokens <= 0) return InvalidArgument("kv_cache_tokens must be > 0");
  if (o.kv_page_size <= 0) return InvalidArgument("kv_page_size must be > 0");
  KvCacheConfig kv;
  kv.page_size = o.kv_page_size;
  kv.logical_page_size = o.kv_logical_page_size;
  kv.num_layers = c.num_hidden_layers;
  kv.num_kv_heads = c.num_key_value_heads;
  kv.head_dim = c.head_dim;
  kv.SetAllHeadsRetrieval();
  kv.num_retrieval_pages = (o.kv_cache_tokens + o.kv_page_size - 1) / o.kv_page_size;
  kv.num_streaming_pages = 0;
  LSERVE_RETURN_IF_ERROR(kv.Validate());
  return kv;
}

}  // namespace

LlamaModel::LlamaModel(std::unique_ptr<State> state) : s_(std::move(state)) {}
LlamaModel::~LlamaModel() = default;

const ModelConfig& LlamaModel::config() const { return s_->config; }
const LlamaWeights& LlamaModel::weights() const { return s_->weights; }
Backend& LlamaModel::backend() const { return *s_->backend; }
const KvCacheConfig& LlamaModel::kv_cache_config() const { return s_->kv.config(); }
uint64_t LlamaModel::kv_cache_bytes() const { return s_->kv.bytes(); }

Result<std::unique_ptr<LlamaModel>> LlamaModel::Load(const ModelSource& source, Backend& backend,
                                                     const ModelOptions& options) {
  const ModelConfig& c = source.config;
  LSERVE_RETURN_IF_ERROR(c.Validate());
  if (c.hidden_act != "silu") {
    return Unimplemented("hidden_act '" + c.hidden_act + "': the Llama-family MLP here is SwiGLU (silu)");
  }
  LSERVE_ASSIGN_OR_RETURN(RopeTables rope, RopeTables::Create(source));
  LSERVE_ASSIGN_OR_RETURN(KvCacheConfig kv_config, MakeKvCacheConfig(c, options));
  LSERVE_ASSIGN_OR_RETURN(LlamaWeights weights, LoadLlamaWeights(source, backend));
  LSERVE_ASSIGN_OR_RETURN(KvStorage kv, KvStorage::Allocate(kv_config, backend, options.poison_kv_cache));
  auto state = std::unique_ptr<State>(new State{.backend = &backend,
                                                .config = c,
                                                .dims = ModelDims::FromConfig(c),
                                                .weights = std::move(weights),
                                                .rope = std::move(rope),
                                                .kv = std::move(kv),
                                                .scratch = {}});
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(state)));
}

Status LlamaModel::Forward(const BatchPlan& plan, const KvCacheManager& kv, ForwardOutput* out) {
  State& s = *s_;
  Backend& be = *s.backend;
  const ModelDims& d = s.dims;
  out->vocab = d.vocab;
  out->rows.clear();
  out->logits.clear();
  LSERVE_RETURN_IF_ERROR(s.kv.CheckManager(kv));
  if (kv.config().has_streaming_heads()) {
    return Unimplemented("streaming heads: the dense forward treats every head as a retrieval head");
  }
  LSERVE_ASSIGN_OR_RETURN(StepInputs in, BuildStepInputs(plan, kv, d, s.rope));
  if (in.rows == 0) return Status::Ok();
  const int64_t n_logits = static_cast<int64_t>(in.logit_rows.size());
  LSERVE_RETURN_IF_ERROR(s.scratch.Reserve(be, d, in.rows, n_logits));
  LSERVE_ASSIGN_OR_RETURN(StepArrays arrays, UploadStepInputs(be, in, d, s.scratch));

  LSERVE_RETURN_IF_ERROR(be.Embedding(EmbeddingParams{.table = s.weights.embed_tokens.data(),
                                                      .dtype = s.weights.embed_tokens.dtype,
                                                      .vocab = d.vocab,
                                                      .hidden = d.hidden,
                                                      .ids = arrays.token_ids,
                                                      .n = in.rows,
                                                      .out = s.scratch.hidden.as<float>()}));
  const LayerContext ctx{.backend = be,
                         .dims = d,
                         .in = in,
                         .arrays = arrays,
                         .scratch = s.scratch,
                         .page_size = s.kv.config().page_size,
                         .logical_page_size = s.kv.config().logical_page_size};
  for (int64_t l = 0; l < d.layers; ++l) {
    const bool last = l + 1 == d.layers;
    const Status st = RunLlamaLayer(ctx, s.weights.layers[static_cast<size_t>(l)], s.kv.at(l, KvPool::kRetrieval),
                                    last ? &in.logit_rows : nullptr);
    if (!st.ok()) return st.Annotate("layer " + std::to_string(l));
  }
  out->rows = std::move(in.logit_info);
  return ComputeLogits(be, s.weights, d, s.scratch, n_logits, out);
}

}  // namespace lserve
