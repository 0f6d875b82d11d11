#include "model/llama_model.h"

#include <algorithm>
#include <string>
#include <vector>

#include "model/forward_step.h"
#include "model/kv_storage.h"
#include "model/layer_forward.h"
#include "model/logits.h"
#include "model/page_selection.h"
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
  AttentionOptions attention;
  PageSelectionStore selections;
};

namespace {

Result<KvCacheConfig> MakeKvCacheConfig(const ModelConfig& c, const ModelOptions& o) {
  if (o.kv_cache_tokens <= 0) return InvalidArgument("kv_cache_tokens must be > 0");
  if (o.kv_page_size <= 0) return InvalidArgument("kv_page_size must be > 0");
  if (o.max_sequences < 1 || o.max_sequences > (1 << 20)) return InvalidArgument("max_sequences must be in [1, 2^20]");
  const AttentionOptions& a = o.attention;
  const bool lserve = a.mode == AttentionMode::kLServe;
  if (!lserve && !a.head_roles.empty()) {
    return InvalidArgument("head roles (streaming heads) need the lserve attention; dense attention has none");
  }
  if (lserve && (a.token_budget < o.kv_page_size || a.token_budget > (int64_t{1} << 30))) {
    return InvalidArgument("token budget " + std::to_string(a.token_budget) + " must be in [page size " +
                           std::to_string(o.kv_page_size) + ", 2^30]");
  }
  if (lserve && (a.select_interval < 1 || a.select_interval > (1 << 20))) {
    return InvalidArgument("select interval " + std::to_string(a.select_interval) + " must be in [1, 2^20]");
  }
  KvCacheConfig kv;
  kv.page_size = o.kv_page_size;
  kv.logical_page_size = o.kv_logical_page_size;
  kv.num_layers = c.num_hidden_layers;
  kv.num_kv_heads = c.num_key_value_heads;
  kv.head_dim = c.head_dim;
  kv.prefill_sink = a.prefill_sink;
  kv.prefill_local = a.prefill_local;
  kv.decode_sink = a.decode_sink;
  kv.decode_local = a.decode_local;
  kv.prefill_chunk = o.prefill_chunk;
  if (a.head_roles.empty()) {
    kv.SetAllHeadsRetrieval();
  } else {
    LSERVE_RETURN_IF_ERROR(kv.SetHeadRoles(a.head_roles));
  }
  kv.num_retrieval_pages = (o.kv_cache_tokens + o.kv_page_size - 1) / o.kv_page_size;
  kv.num_streaming_pages = kv.has_streaming_heads() ? 1 : 0;  // sized below, from the validated windows
  LSERVE_RETURN_IF_ERROR(kv.Validate());
  // Every sequence's ring at its decode width, plus room for two sequences
  // prefilling at the full prefill width at once (admission by free pages
  // holds further prefills back until a ring narrows at its first decode).
  const int64_t wide = std::min<int64_t>(o.max_sequences, 2);
  kv.num_streaming_pages =
      kv.has_streaming_heads()
          ? o.max_sequences * (kv.sink_pages() + kv.decode_ring_pages()) +
                wide * (kv.prefill_ring_pages() - kv.decode_ring_pages())
          : 0;
  LSERVE_RETURN_IF_ERROR(kv.Validate());
  return kv;
}

// The step's pages read vs dense, prefill rows and decode rows apart: from
// the sparse kernel's per-sequence counters, or (dense attention) what dense
// attention reads.
Status CollectSparsity(Backend& be, const StepInputs& in, const ModelDims& d, const ForwardScratch& scratch,
                       SparsityStats* stats) {
  const PagedBatch& b = in.batch;
  std::vector<SparseAttentionCounters> seq(static_cast<size_t>(b.num_seqs));
  if (in.sparse) {
    LSERVE_RETURN_IF_ERROR(be.Synchronize());
    LSERVE_RETURN_IF_ERROR(
        be.CopyToHost(seq.data(), scratch.seq_counters, 0, seq.size() * sizeof(SparseAttentionCounters)));
  } else {
    for (int64_t s = 0; s < b.num_seqs; ++s) {
      int64_t pages = 0;
      for (int64_t i = 0; i < b.q_start[s + 1] - b.q_start[s]; ++i) {
        pages += PagesSpanned(0, std::min(b.q_pos0[s] + i + 1, b.kv_len[s]), b.page_size);
      }
      seq[static_cast<size_t>(s)] = {pages * d.kv_heads * d.layers, pages * d.kv_heads * d.layers};
    }
  }
  for (int64_t s = 0; s < b.num_seqs; ++s) {
    const SparseAttentionCounters& c = seq[static_cast<size_t>(s)];
    const bool decode = in.seq_decode[static_cast<size_t>(s)] != 0;
    (decode ? stats->decode_pages_read : stats->prefill_blocks_visited) += c.blocks_visited;
    (decode ? stats->decode_pages_dense : stats->prefill_blocks_dense) += c.blocks_dense;
  }
  return Status::Ok();
}

}  // namespace

LlamaModel::LlamaModel(std::unique_ptr<State> state) : s_(std::move(state)) {}
LlamaModel::~LlamaModel() = default;

const ModelConfig& LlamaModel::config() const { return s_->config; }
const LlamaWeights& LlamaModel::weights() const { return s_->weights; }
Backend& LlamaModel::backend() const { return *s_->backend; }
const KvCacheConfig& LlamaModel::kv_cache_config() const { return s_->kv.config(); }
uint64_t LlamaModel::kv_cache_bytes() const { return s_->kv.bytes(); }
const AttentionOptions& LlamaModel::attention() const { return s_->attention; }
uint64_t LlamaModel::kv_bytes_per_page(KvPool pool) const {
  const int64_t pages = s_->kv.config().total_pages(pool);
  return pages > 0 ? static_cast<uint64_t>(s_->kv.layout().pool_bytes(pool) / pages) : 0;
}

const char* AttentionModeName(AttentionMode mode) { return mode == AttentionMode::kLServe ? "lserve" : "dense"; }

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
                                                .scratch = {},
                                                .attention = options.attention,
                                                .selections = {}});
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(state)));
}

Status LlamaModel::Forward(const BatchPlan& plan, const KvCacheManager& kv, ForwardOutput* out,
                           AttentionProbe* probe) {
  State& s = *s_;
  Backend& be = *s.backend;
  const ModelDims& d = s.dims;
  out->vocab = d.vocab;
  out->rows.clear();
  out->logits.clear();
  out->sparsity = {};
  LSERVE_RETURN_IF_ERROR(s.kv.CheckManager(kv));
  const bool sparse = s.attention.mode == AttentionMode::kLServe;
  if (probe != nullptr) {
    if (sparse || s.kv.config().has_streaming_heads()) {
      return InvalidArgument("the attention probe runs on the dense attention only");
    }
    if (probe->sink < 0 || probe->local < 1) return InvalidArgument("probe window: sink >= 0 and local >= 1");
    probe->kept_mass.resize(static_cast<size_t>(d.layers * d.kv_heads), 0.0);
  }
  LSERVE_ASSIGN_OR_RETURN(StepInputs in, BuildStepInputs(plan, kv, d, s.rope, sparse));
  if (in.rows == 0) return Status::Ok();
  const KvCacheConfig& kvc = s.kv.config();
  const SelectionPolicy policy{.page_size = kvc.page_size,
                               .token_budget = s.attention.token_budget,
                               .select_interval = s.attention.select_interval};
  std::vector<SelectionAction> selections;
  if (sparse && kvc.has_retrieval_heads()) {
    LSERVE_ASSIGN_OR_RETURN(selections, s.selections.Plan(plan, kv, policy, be, d.layers, d.kv_heads));
  }
  const int64_t n_logits = static_cast<int64_t>(in.logit_rows.size());
  LSERVE_RETURN_IF_ERROR(s.scratch.Reserve(be, d, in.rows, n_logits));
  LSERVE_ASSIGN_OR_RETURN(StepArrays arrays, UploadStepInputs(be, in, d, policy.max_pages(), s.scratch));

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
                         .kv = s.kv,
                         .selections = &selections,
                         .store = &s.selections,
                         .max_pages = policy.max_pages(),
                         .probe = probe};
  for (int64_t l = 0; l < d.layers; ++l) {
    const bool last = l + 1 == d.layers;
    const Status st = RunLlamaLayer(ctx, s.weights.layers[static_cast<size_t>(l)], l, last ? &in.logit_rows : nullptr);
    if (!st.ok()) return st.Annotate("layer " + std::to_string(l));
  }
  LSERVE_RETURN_IF_ERROR(CollectSparsity(be, in, d, s.scratch, &out->sparsity));
  if (probe != nullptr) {
    for (size_t st = 0; st < plan.steps.size(); ++st) {
      const SequenceStep& step = plan.steps[st];
      for (size_t i = 0; i < step.tokens.size(); ++i) {
        probe->rows += step.start_pos + static_cast<int64_t>(i) >= probe->min_position;
      }
    }
  }
  out->rows = std::move(in.logit_info);
  return ComputeLogits(be, s.weights, d, s.scratch, n_logits, out);
}

}  // namespace lserve
