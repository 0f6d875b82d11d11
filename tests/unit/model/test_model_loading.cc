// Loading weights onto a backend: GGUF block types used in place give the
// same forward as their f32 dequantization, rope_freqs is applied, bad
// tensors and exhausted memory come back as a Status, and Forward refuses
// plans that do not match the cache.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model/rope_tables.h"
#include "model_test_util.h"

namespace lserve {
namespace {

using testing::MaxAbsDiff;
using testing::SourcePath;

const std::string kTinyLlamaGguf = SourcePath("tests/fixtures/gguf/tiny_llama.gguf");
// Every parameter of tiny_llama.gguf as transformers' GGUF loader makes it:
// F32, HF names, Q/K rows un-permuted (bit-exact gguf.quants dequantization).
const std::string kTinyLlamaExpected = SourcePath("tests/fixtures/gguf/tiny_llama.expected.gguf");

ModelSource ExpectedF32Source(const ModelSource& quantized) {
  auto expected = GgufFile::Open(kTinyLlamaExpected);
  EXPECT_TRUE(expected.ok());
  ModelSource s = quantized;  // config, and the GGUF file that holds rope_freqs
  s.tensors.clear();
  s.stored_dtypes.clear();
  for (const GgufTensorInfo& t : (*expected)->tensors()) {
    s.tensors.push_back(TensorInfo{.name = std::string(t.name), .dtype = DType::kF32, .shape = t.shape(),
                                   .data = t.data, .file = kTinyLlamaExpected});
    s.stored_dtypes.push_back("F32");
  }
  s.storage = *expected;
  return s;
}

std::vector<int32_t> RandomIds(int64_t vocab, size_t n) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab) - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = d(rng);
  return ids;
}

testing::LoadedModel LoadFrom(const ModelSource& source, CpuMode mode, ModelOptions o = {}) {
  testing::LoadedModel m;
  m.backend = std::make_unique<CpuBackend>(CpuBackendOptions{.mode = mode, .threads = 2});
  auto model = LlamaModel::Load(source, *m.backend, o);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return m;
  m.model = std::move(model).value();
  m.kv = std::make_unique<KvCacheManager>(KvCacheManager::Create(m.model->kv_cache_config()).value());
  return m;
}

TEST(ModelLoading, GgufBlockTypesInPlaceMatchTheirF32Dequantization) {
  auto quantized = OpenModel(kTinyLlamaGguf);
  ASSERT_TRUE(quantized.ok()) << quantized.status().ToString();
  const ModelSource f32 = ExpectedF32Source(*quantized);
  const std::vector<int32_t> ids = RandomIds(quantized->config.vocab_size, 37);
  for (CpuMode mode : {CpuMode::kReference, CpuMode::kFast}) {
    testing::LoadedModel q = LoadFrom(*quantized, mode);
    testing::LoadedModel f = LoadFrom(f32, mode);
    ASSERT_NE(q.model, nullptr);
    ASSERT_NE(f.model, nullptr);
    // Stored types kept: Q8_0 embeddings, Q4_1 q_proj, F16 lm_head, ...
    EXPECT_EQ(q.model->weights().embed_tokens.dtype, DType::kQ8_0);
    EXPECT_EQ(q.model->weights().layers[0].q.weight.dtype, DType::kQ4_1);
    EXPECT_EQ(q.model->weights().layers[0].gate.weight.dtype, DType::kBF16);
    EXPECT_EQ(q.model->weights().lm_head().dtype, DType::kF16);
    EXPECT_TRUE(q.model->weights().converted.empty());
    EXPECT_LT(q.model->weights().bytes(), f.model->weights().bytes());
    const std::vector<float> lq = testing::OneShotLogits(q, ids, 5);
    const std::vector<float> lf = testing::OneShotLogits(f, ids, 5);
    // The reference kernels dequantize a row and then run the f32 arithmetic:
    // identical results. The fast kernels may take other paths per type.
    const float tol = mode == CpuMode::kReference ? 0.0f : 2e-5f * std::max(1.0f, testing::MaxAbs(lf));
    EXPECT_LE(MaxAbsDiff(lq, lf), tol) << CpuModeName(mode);
  }
}

TEST(ModelLoading, GgufRopeFreqsDivideTheFrequencies) {
  auto source = OpenModel(kTinyLlamaGguf);
  ASSERT_TRUE(source.ok());
  auto tables = RopeTables::Create(*source);
  ASSERT_TRUE(tables.ok()) << tables.status().ToString();
  const std::vector<float> want_factors = {1, 1, 1, 1.5f, 2.5f, 4, 8, 8};
  EXPECT_EQ(tables->gguf_rope_freqs(), want_factors);
  auto with = tables->ForSeqLen(1);
  auto without = ComputeRopeTable(source->config, nullptr, 1);
  ASSERT_TRUE(with.ok() && without.ok());
  for (size_t i = 0; i < want_factors.size(); ++i) EXPECT_EQ(with->inv_freq[i], without->inv_freq[i] / want_factors[i]);
  // A model without the tensor: plain table.
  auto hf = OpenModel(testing::FixtureDir("mistral_mqa"));
  ASSERT_TRUE(hf.ok());
  auto plain = RopeTables::Create(*hf);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->gguf_rope_freqs().empty());
  EXPECT_FALSE(plain->depends_on_length());
}

TEST(ModelLoading, WidensTypesWithoutAKernelToF32) {
  auto quantized = OpenModel(kTinyLlamaGguf);
  ASSERT_TRUE(quantized.ok());
  ModelSource f32 = ExpectedF32Source(*quantized);
  // The final norm as F64 (no CPU kernel reads F64): converted at load, same result.
  auto it = std::find_if(f32.tensors.begin(), f32.tensors.end(),
                         [](const TensorInfo& t) { return t.name == "model.norm.weight"; });
  ASSERT_NE(it, f32.tensors.end());
  auto f64 = std::make_shared<std::vector<double>>(it->num_elements());
  for (size_t i = 0; i < f64->size(); ++i) {
    float v;
    std::memcpy(&v, it->data.data() + 4 * i, 4);
    (*f64)[i] = v;
  }
  ModelSource widened = f32;
  auto wit = std::find_if(widened.tensors.begin(), widened.tensors.end(),
                          [](const TensorInfo& t) { return t.name == "model.norm.weight"; });
  wit->dtype = DType::kF64;
  wit->data = {reinterpret_cast<const uint8_t*>(f64->data()), f64->size() * 8};
  testing::LoadedModel a = LoadFrom(f32, CpuMode::kReference);
  testing::LoadedModel b = LoadFrom(widened, CpuMode::kReference);
  ASSERT_NE(b.model, nullptr);
  ASSERT_EQ(b.model->weights().converted.size(), 1u);
  EXPECT_EQ(b.model->weights().final_norm.dtype, DType::kF32);
  const std::vector<int32_t> ids = RandomIds(f32.config.vocab_size, 9);
  EXPECT_EQ(MaxAbsDiff(testing::OneShotLogits(a, ids), testing::OneShotLogits(b, ids)), 0.0f);
}

TEST(ModelLoading, RefusesMissingMisshapenAndTruncatedTensors) {
  auto source = OpenModel(testing::FixtureDir("qwen2_tied"));
  ASSERT_TRUE(source.ok());
  CpuBackend backend(CpuBackendOptions{.mode = CpuMode::kReference});
  {
    ModelSource s = *source;
    s.tensors.erase(std::find_if(s.tensors.begin(), s.tensors.end(),
                                 [](const TensorInfo& t) { return t.name == "model.layers.1.self_attn.k_proj.bias"; }));
    auto m = LlamaModel::Load(s, backend);
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("k_proj.bias"), std::string::npos) << m.status().ToString();
  }
  {
    ModelSource s = *source;
    for (TensorInfo& t : s.tensors)
      if (t.name == "model.layers.0.mlp.up_proj.weight") std::swap(t.shape[0], t.shape[1]);
    EXPECT_EQ(LlamaModel::Load(s, backend).status().code(), StatusCode::kInvalidArgument);
  }
  {
    ModelSource s = *source;
    for (TensorInfo& t : s.tensors)
      if (t.name == "model.norm.weight") t.data = t.data.subspan(0, t.data.size() - 2);
    EXPECT_EQ(LlamaModel::Load(s, backend).status().code(), StatusCode::kInvalidArgument);
  }
  {
    ModelSource s = *source;
    s.config.hidden_act = "gelu";
    EXPECT_EQ(LlamaModel::Load(s, backend).status().code(), StatusCode::kUnimplemented);
  }
  {
    ModelSource s = *source;
    s.config.num_key_value_heads = 3;  // does not divide the query heads
    EXPECT_EQ(LlamaModel::Load(s, backend).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(LlamaModel::Load(*source, backend, ModelOptions{.kv_page_size = 24}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(LlamaModel::Load(*source, backend, ModelOptions{.kv_cache_tokens = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(backend.Info().allocated_bytes, 0u);  // failed loads leave nothing behind
}

TEST(ModelLoading, MemoryLimitsSurfaceAsResourceExhausted) {
  auto source = OpenModel(testing::FixtureDir("qwen2_tied"));
  ASSERT_TRUE(source.ok());
  CpuBackend small(CpuBackendOptions{.mode = CpuMode::kReference, .memory_limit_bytes = 1 << 20});
  // 2 layers x 2 KV heads x 16 dims x 4 bytes x (K + V) = 512 bytes per token.
  auto m = LlamaModel::Load(*source, small, ModelOptions{.kv_cache_tokens = 1 << 16});
  EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted);
  auto ok = LlamaModel::Load(*source, small, ModelOptions{.kv_cache_tokens = 256});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_GE((*ok)->kv_cache_bytes(), 256u * 512u);
  // A step whose scratch does not fit fails cleanly; smaller steps run before and after.
  auto kv = KvCacheManager::Create((*ok)->kv_cache_config());
  ASSERT_TRUE(kv.ok());
  int64_t next_seq = 1;
  auto run = [&](int64_t n_tokens) {
    const int64_t seq = next_seq++;
    EXPECT_TRUE(kv->AddSequence(seq).ok());
    EXPECT_TRUE(kv->Grow(seq, n_tokens).ok());
    BatchPlan plan;
    plan.steps.push_back({.seq_id = seq, .start_pos = 0, .tokens = std::vector<int32_t>(n_tokens, 3),
                          .logits = LogitsWanted::kAll});
    ForwardOutput out;
    const Status st = (*ok)->Forward(plan, *kv, &out);
    EXPECT_TRUE(kv->Free(seq).ok());
    if (st.ok()) {
      EXPECT_EQ(out.rows.size(), static_cast<size_t>(n_tokens));
    }
    return st.code();
  };
  EXPECT_EQ(run(8), StatusCode::kOk);
  EXPECT_EQ(run(250), StatusCode::kResourceExhausted);  // 250 rows of logits: ~1.1 MB
  EXPECT_EQ(run(8), StatusCode::kOk);
  EXPECT_EQ(run(60), StatusCode::kOk);
}

TEST(ModelForward, RefusesPlansThatDoNotMatchTheCache) {
  testing::LoadedModel m = testing::LoadModel(testing::FixtureDir("mistral_mqa"), CpuMode::kReference,
                                              ModelOptions{.kv_page_size = 16, .kv_cache_tokens = 64});
  ASSERT_NE(m.model, nullptr);
  KvCacheManager& kv = *m.kv;
  ASSERT_TRUE(kv.AddSequence(1).ok());
  ForwardOutput out;
  BatchPlan plan;
  plan.steps.push_back({.seq_id = 1, .start_pos = 0, .tokens = {1, 2, 3}, .logits = LogitsWanted::kLast});
  // Not grown yet.
  EXPECT_EQ(m.model->Forward(plan, kv, &out).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(kv.Grow(1, 3).ok());
  // A token outside the vocabulary.
  plan.steps[0].tokens[1] = static_cast<int32_t>(m.vocab());
  EXPECT_EQ(m.model->Forward(plan, kv, &out).code(), StatusCode::kInvalidArgument);
  plan.steps[0].tokens[1] = -1;
  EXPECT_EQ(m.model->Forward(plan, kv, &out).code(), StatusCode::kInvalidArgument);
  plan.steps[0].tokens[1] = 2;
  // An unknown sequence.
  BatchPlan other = plan;
  other.steps[0].seq_id = 9;
  EXPECT_EQ(m.model->Forward(other, kv, &out).code(), StatusCode::kInvalidArgument);
  // A manager built from another configuration.
  KvCacheConfig cfg = m.model->kv_cache_config();
  cfg.num_retrieval_pages += 1;
  auto foreign = KvCacheManager::Create(cfg);
  ASSERT_TRUE(foreign.ok());
  ASSERT_TRUE(foreign->AddSequence(1).ok());
  ASSERT_TRUE(foreign->Grow(1, 3).ok());
  EXPECT_EQ(m.model->Forward(plan, *foreign, &out).code(), StatusCode::kInvalidArgument);
  // The valid plan runs; an empty plan is a no-op.
  ASSERT_TRUE(m.model->Forward(plan, kv, &out).ok());
  EXPECT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].position, 2);
  EXPECT_TRUE(m.model->Forward(BatchPlan{}, kv, &out).ok());
  EXPECT_TRUE(out.rows.empty());
  // kNone: the KV cache is filled, no logits.
  ASSERT_TRUE(kv.AddSequence(2).ok());
  ASSERT_TRUE(kv.Grow(2, 5).ok());
  BatchPlan silent;
  silent.steps.push_back({.seq_id = 2, .start_pos = 0, .tokens = {4, 5, 6, 7, 8}, .logits = LogitsWanted::kNone});
  ASSERT_TRUE(m.model->Forward(silent, kv, &out).ok());
  EXPECT_TRUE(out.rows.empty());
  EXPECT_TRUE(out.logits.empty());
}

}  // namespace
}  // namespace lserve
