// LoadGgufModel: GGUF metadata -> ModelConfig, ggml names -> HF names, and
// the Q/K row un-permutation, against transformers' GGUF loader (fixtures of
// tools/fixtures/make_gguf_fixtures.py) and the real demo model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/gguf_quant.h"
#include "gguf_test_util.h"

namespace lserve {
namespace {

using namespace lserve::testing;

const std::string kFixtures = LSERVE_SOURCE_DIR "/tests/fixtures/gguf/";
const std::string kDemoModel = LSERVE_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::vector<float> F32Data(std::span<const uint8_t> bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

std::vector<uint8_t> FloatBytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// convert_hf_to_gguf.py's permute(): HF row (h, part, i) of a head of d rows
// goes to GGUF row (h, i, part), part in {0, 1}, i < d/2. Written from the
// reshape(n_head, 2, d/2, ...).swapaxes(1, 2) definition.
std::vector<float> PermuteLikeConvert(const std::vector<float>& hf, int64_t rows, int64_t cols, int64_t n_head) {
  std::vector<float> out(hf.size());
  const int64_t d = rows / n_head;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t part = 0; part < 2; ++part)
      for (int64_t i = 0; i < d / 2; ++i)
        for (int64_t c = 0; c < cols; ++c)
          out[((h * d) + i * 2 + part) * cols + c] = hf[((h * d) + part * (d / 2) + i) * cols + c];
  return out;
}

// ---------------------------------------------------------------------------
// A minimal llama file built in memory: hidden 32, 2 heads (head_dim 16), one
// KV head, ffn 48, one layer, vocab 8; F32 tensors with random values.

struct ModelSpec {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kvs;  // key -> encoded entry
  std::vector<GgufTestTensor> tensors;

  void Set(const std::string& key, std::vector<uint8_t> entry) {
    for (auto& kv : kvs)
      if (kv.first == key) {
        kv.second = std::move(entry);
        return;
      }
    kvs.emplace_back(key, std::move(entry));
  }
  void Remove(const std::string& key) {
    std::erase_if(kvs, [&](const auto& kv) { return kv.first == key; });
  }
  GgufTestTensor* Tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  void RemoveTensor(const std::string& name) {
    std::erase_if(tensors, [&](const auto& t) { return t.name == name; });
  }
  Result<GgufModel> Load() const {
    GgufTestFile f;
    for (const auto& kv : kvs) f.kvs.push_back(kv.second);
    f.tensors = tensors;
    auto g = GgufFile::ParseOwned(f.Build(), "model.gguf");
    if (!g.ok()) return g.status();
    return LoadGgufModel(*g);
  }
};

std::vector<float> RandomFloats(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

GgufTestTensor F32(const std::string& name, std::vector<int64_t> ne, std::mt19937& rng) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return GgufTestTensor{.name = name, .type = 0, .ne = std::move(ne), .data = FloatBytes(RandomFloats(rng, n))};
}

ModelSpec MinimalModel(const std::string& arch, std::mt19937& rng) {
  ModelSpec m;
  const int64_t hidden = 32, heads = 2, kv_heads = 1, head_dim = 16, ffn = 48, vocab = 8;
  m.Set("general.architecture", KvString("general.architecture", arch));
  m.Set(arch + ".context_length", KvScalar<uint32_t>(arch + ".context_length", kGU32, 64));
  m.Set(arch + ".embedding_length", KvScalar<uint32_t>(arch + ".embedding_length", kGU32, hidden));
  m.Set(arch + ".block_count", KvScalar<uint32_t>(arch + ".block_count", kGU32, 1));
  m.Set(arch + ".feed_forward_length", KvScalar<uint32_t>(arch + ".feed_forward_length", kGU32, ffn));
  m.Set(arch + ".attention.head_count", KvScalar<uint32_t>(arch + ".attention.head_count", kGU32, heads));
  m.Set(arch + ".attention.head_count_kv", KvScalar<uint32_t>(arch + ".attention.head_count_kv", kGU32, kv_heads));
  m.Set(arch + ".attention.layer_norm_rms_epsilon",
        KvScalar<float>(arch + ".attention.layer_norm_rms_epsilon", kGF32, 1e-5f));
  m.Set(arch + ".rope.freq_base", KvScalar<float>(arch + ".rope.freq_base", kGF32, 10000.f));
  m.Set(arch + ".vocab_size", KvScalar<uint32_t>(arch + ".vocab_size", kGU32, vocab));
  m.Set("tokenizer.ggml.bos_token_id", KvScalar<uint32_t>("tokenizer.ggml.bos_token_id", kGU32, 1));
  m.Set("tokenizer.ggml.eos_token_id", KvScalar<uint32_t>("tokenizer.ggml.eos_token_id", kGU32, 2));
  m.tensors.push_back(F32("token_embd.weight", {hidden, vocab}, rng));
  m.tensors.push_back(F32("blk.0.attn_norm.weight", {hidden}, rng));
  m.tensors.push_back(F32("blk.0.attn_q.weight", {hidden, heads * head_dim}, rng));
  m.tensors.push_back(F32("blk.0.attn_k.weight", {hidden, kv_heads * head_dim}, rng));
  m.tensors.push_back(F32("blk.0.attn_v.weight", {hidden, kv_heads * head_dim}, rng));
  if (arch == "qwen2") {
    m.tensors.push_back(F32("blk.0.attn_q.bias", {heads * head_dim}, rng));
    m.tensors.push_back(F32("blk.0.attn_k.bias", {kv_heads * head_dim}, rng));
    m.tensors.push_back(F32("blk.0.attn_v.bias", {kv_heads * head_dim}, rng));
  }
  m.tensors.push_back(F32("blk.0.attn_output.weight", {heads * head_dim, hidden}, rng));
  m.tensors.push_back(F32("blk.0.ffn_norm.weight", {hidden}, rng));
  m.tensors.push_back(F32("blk.0.ffn_gate.weight", {hidden, ffn}, rng));
  m.tensors.push_back(F32("blk.0.ffn_up.weight", {hidden, ffn}, rng));
  m.tensors.push_back(F32("blk.0.ffn_down.weight", {ffn, hidden}, rng));
  m.tensors.push_back(F32("output_norm.weight", {hidden}, rng));
  m.tensors.push_back(F32("output.weight", {hidden, vocab}, rng));
  return m;
}

const TensorInfo* FindHf(const GgufModel& m, const std::string& name) {
  for (const auto& t : m.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void ExpectLoadError(const ModelSpec& m, StatusCode code, const std::string& needle) {
  auto r = m.Load();
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

class GgufModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const uint32_t seed = std::random_device()();
    rng_.seed(seed);
    trace_ = std::make_unique<::testing::ScopedTrace>(__FILE__, __LINE__, "seed " + std::to_string(seed));
  }
  std::mt19937 rng_;
  std::unique_ptr<::testing::ScopedTrace> trace_;
};

TEST_F(GgufModelTest, MinimalLlamaLoads) {
  ModelSpec m = MinimalModel("llama", rng_);
  auto r = m.Load();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelConfig& c = r->config;
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_attention_heads, 2);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.intermediate_size, 48);
  EXPECT_EQ(c.num_hidden_layers, 1);
  EXPECT_EQ(c.vocab_size, 8);
  EXPECT_EQ(c.max_position_embeddings, 64);
  EXPECT_EQ(c.rms_norm_eps, static_cast<double>(1e-5f));
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(c.pad_token_id.has_value());
  ASSERT_EQ(r->tensors.size(), 12u);
  ASSERT_EQ(r->stored_dtypes.size(), 12u);
  EXPECT_FALSE(r->rope_freqs.has_value());
  const TensorInfo* embed = FindHf(*r, "model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(embed->dtype, DType::kF32);
  EXPECT_EQ(embed->file, "model.gguf");
  EXPECT_EQ(FindHf(*r, "model.layers.0.mlp.down_proj.weight")->shape, (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(FindHf(*r, "model.layers.0.mlp.gate_proj.weight")->shape, (std::vector<int64_t>{48, 32}));
  EXPECT_NE(FindHf(*r, "lm_head.weight"), nullptr);
  // Tensors that are not rewritten stay views into the file.
  const auto* g_embed = r->file->FindTensor("token_embd.weight");
  EXPECT_EQ(embed->data.data(), g_embed->data.data());
}

TEST_F(GgufModelTest, QueryAndKeyRowsAreUnpermuted) {
  ModelSpec m = MinimalModel("llama", rng_);
  const int64_t hidden = 32;
  // HF-layout weights, permuted as the converter does.
  const std::vector<float> q_hf = RandomFloats(rng_, 32 * hidden);
  const std::vector<float> k_hf = RandomFloats(rng_, 16 * hidden);
  m.Tensor("blk.0.attn_q.weight")->data = FloatBytes(PermuteLikeConvert(q_hf, 32, hidden, 2));
  m.Tensor("blk.0.attn_k.weight")->data = FloatBytes(PermuteLikeConvert(k_hf, 16, hidden, 1));
  auto r = m.Load();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(F32Data(FindHf(*r, "model.layers.0.self_attn.q_proj.weight")->data), q_hf);
  EXPECT_EQ(F32Data(FindHf(*r, "model.layers.0.self_attn.k_proj.weight")->data), k_hf);
  EXPECT_EQ(r->owned_buffers.size(), 2u);
  // v is not permuted.
  EXPECT_EQ(FindHf(*r, "model.layers.0.self_attn.v_proj.weight")->data.data(),
            r->file->FindTensor("blk.0.attn_v.weight")->data.data());

  // The model outlives copies and the file handle given to it.
  GgufModel copy = *r;
  r = Status(StatusCode::kInternal, "dropped");
  EXPECT_EQ(F32Data(FindHf(copy, "model.layers.0.self_attn.q_proj.weight")->data), q_hf);
}

TEST_F(GgufModelTest, QuantizedRowsMoveWhole) {
  // K as Q8_0: each row of 32 elements is one 34-byte block; rows move as bytes.
  ModelSpec m = MinimalModel("llama", rng_);
  std::vector<uint8_t> hf_rows(16 * 34);
  for (auto& b : hf_rows) b = static_cast<uint8_t>(rng_());
  for (int64_t r = 0; r < 16; ++r) {  // finite f16 scales
    const uint16_t d = F32ToF16(0.01f * (r + 1));
    std::memcpy(hf_rows.data() + r * 34, &d, 2);
  }
  std::vector<uint8_t> gguf_rows(hf_rows.size());
  // One KV head of 16 rows: HF row part*8 + i is GGUF row 2i + part.
  for (int64_t part = 0; part < 2; ++part)
    for (int64_t i = 0; i < 8; ++i)
      std::memcpy(gguf_rows.data() + (2 * i + part) * 34, hf_rows.data() + (part * 8 + i) * 34, 34);
  *m.Tensor("blk.0.attn_k.weight") = GgufTestTensor{.name = "blk.0.attn_k.weight", .type = ggml_type::kQ8_0,
                                                    .ne = {32, 16}, .data = gguf_rows};
  auto r = m.Load();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const TensorInfo* k = FindHf(*r, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(k->dtype, DType::kQ8_0);
  EXPECT_EQ(std::vector<uint8_t>(k->data.begin(), k->data.end()), hf_rows);
  EXPECT_EQ(r->stored_dtypes[3], "Q8_0");
}

TEST_F(GgufModelTest, Qwen2HasBiasesAndNoPermutation) {
  ModelSpec m = MinimalModel("qwen2", rng_);
  m.RemoveTensor("output.weight");
  auto r = m.Load();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->config.architecture, Architecture::kQwen2);
  EXPECT_TRUE(r->config.attention_bias);
  EXPECT_TRUE(r->config.tie_word_embeddings);
  EXPECT_EQ(FindHf(*r, "lm_head.weight"), nullptr);
  EXPECT_EQ(FindHf(*r, "model.layers.0.self_attn.q_proj.bias")->shape, std::vector<int64_t>{32});
  EXPECT_EQ(FindHf(*r, "model.layers.0.self_attn.q_proj.weight")->data.data(),
            r->file->FindTensor("blk.0.attn_q.weight")->data.data());
  EXPECT_TRUE(r->owned_buffers.empty());
}

TEST_F(GgufModelTest, LlamaBiasesAreUnpermutedToo) {
  ModelSpec m = MinimalModel("llama", rng_);
  const std::vector<float> qb = RandomFloats(rng_, 32), kb = RandomFloats(rng_, 16);
  m.tensors.push_back(GgufTestTensor{.name = "blk.0.attn_q.bias", .type = 0, .ne = {32},
                                     .data = FloatBytes(PermuteLikeConvert(qb, 32, 1, 2))});
  m.tensors.push_back(GgufTestTensor{.name = "blk.0.attn_k.bias", .type = 0, .ne = {16},
                                     .data = FloatBytes(PermuteLikeConvert(kb, 16, 1, 1))});
  m.tensors.push_back(F32("blk.0.attn_v.bias", {16}, rng_));
  m.tensors.push_back(F32("blk.0.attn_output.bias", {32}, rng_));
  auto r = m.Load();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->config.attention_bias);
  EXPECT_EQ(F32Data(FindHf(*r, "model.layers.0.self_attn.q_proj.bias")->data), qb);
  EXPECT_EQ(F32Data(FindHf(*r, "model.layers.0.self_attn.k_proj.bias")->data), kb);
}

TEST_F(GgufModelTest, MetadataVariants) {
  {  // vocab from the token list; pad id; sampling defaults; head_dim from key_length
    ModelSpec m = MinimalModel("llama", rng_);
    m.Remove("llama.vocab_size");
    m.Set("tokenizer.ggml.tokens", KvStringArray("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "f", "g", "h"}));
    m.Set("tokenizer.ggml.padding_token_id", KvScalar<int32_t>("tokenizer.ggml.padding_token_id", kGI32, 7));
    m.Set("general.sampling.top_k", KvScalar<int32_t>("general.sampling.top_k", kGI32, 40));
    m.Set("general.sampling.temp", KvScalar<float>("general.sampling.temp", kGF32, 0.5f));
    m.Set("llama.attention.key_length", KvScalar<uint32_t>("llama.attention.key_length", kGU32, 16));
    m.Set("llama.rope.dimension_count", KvScalar<uint32_t>("llama.rope.dimension_count", kGU32, 16));
    auto r = m.Load();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->config.vocab_size, 8);
    EXPECT_EQ(r->config.pad_token_id, 7);
    EXPECT_EQ(r->config.generation.top_k, 40);
    EXPECT_EQ(r->config.generation.temperature, 0.5);
  }
  {  // linear rope scaling
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.rope.scaling.type", KvString("llama.rope.scaling.type", "linear"));
    m.Set("llama.rope.scaling.factor", KvScalar<float>("llama.rope.scaling.factor", kGF32, 4.f));
    auto r = m.Load();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->config.rope_scaling.type, RopeScalingType::kLinear);
    EXPECT_EQ(r->config.rope_scaling.factor, 4.0);
  }
  {  // yarn
    ModelSpec m = MinimalModel("qwen2", rng_);
    m.Set("qwen2.rope.scaling.type", KvString("qwen2.rope.scaling.type", "yarn"));
    m.Set("qwen2.rope.scaling.factor", KvScalar<float>("qwen2.rope.scaling.factor", kGF32, 4.f));
    m.Set("qwen2.rope.scaling.original_context_length",
          KvScalar<uint32_t>("qwen2.rope.scaling.original_context_length", kGU32, 32768));
    auto r = m.Load();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->config.rope_scaling.type, RopeScalingType::kYarn);
    EXPECT_EQ(r->config.rope_scaling.original_max_position_embeddings, 32768);
  }
  {  // llama3 frequency factors kept aside
    ModelSpec m = MinimalModel("llama", rng_);
    m.tensors.push_back(GgufTestTensor{.name = "rope_freqs.weight", .type = 0, .ne = {8},
                                       .data = FloatBytes({1, 1, 1, 2, 3, 4, 8, 8})});
    auto r = m.Load();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->rope_freqs.has_value());
    EXPECT_EQ(F32Data(r->rope_freqs->data), (std::vector<float>{1, 1, 1, 2, 3, 4, 8, 8}));
    EXPECT_EQ(r->tensors.size(), 12u);
    m.Tensor("rope_freqs.weight")->ne = {4};
    m.Tensor("rope_freqs.weight")->data.resize(16);
    ExpectLoadError(m, StatusCode::kInvalidArgument, "rope_freqs.weight must be F32 [8]");
  }
}

TEST_F(GgufModelTest, MetadataErrors) {
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Remove("llama.embedding_length");
    ExpectLoadError(m, StatusCode::kInvalidArgument, "'llama.embedding_length' is missing");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.block_count", KvString("llama.block_count", "30"));
    ExpectLoadError(m, StatusCode::kInvalidArgument, "'llama.block_count' has type string");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("general.architecture", KvString("general.architecture", "gpt2"));
    ExpectLoadError(m, StatusCode::kUnimplemented, "architecture 'gpt2'");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Remove("general.architecture");
    ExpectLoadError(m, StatusCode::kNotFound, "general.architecture");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.rope.dimension_count", KvScalar<uint32_t>("llama.rope.dimension_count", kGU32, 8));
    ExpectLoadError(m, StatusCode::kUnimplemented, "partial rotary");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.attention.value_length", KvScalar<uint32_t>("llama.attention.value_length", kGU32, 8));
    ExpectLoadError(m, StatusCode::kUnimplemented, "value_length");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.rope.scaling.type", KvString("llama.rope.scaling.type", "longrope"));
    ExpectLoadError(m, StatusCode::kUnimplemented, "longrope");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("llama.rope.scaling.type", KvString("llama.rope.scaling.type", "linear"));
    ExpectLoadError(m, StatusCode::kInvalidArgument, "scaling.factor");
  }
  {  // Validate(): token id outside the vocabulary, heads not dividing
    ModelSpec m = MinimalModel("llama", rng_);
    m.Set("tokenizer.ggml.bos_token_id", KvScalar<uint32_t>("tokenizer.ggml.bos_token_id", kGU32, 8));
    ExpectLoadError(m, StatusCode::kInvalidArgument, "bos_token_id");
    ModelSpec z = MinimalModel("llama", rng_);
    z.Set("llama.block_count", KvScalar<uint64_t>("llama.block_count", kGU64, uint64_t{1} << 40));
    ExpectLoadError(z, StatusCode::kInvalidArgument, "num_hidden_layers");
    ModelSpec neg = MinimalModel("llama", rng_);
    neg.Set("llama.feed_forward_length", KvScalar<int32_t>("llama.feed_forward_length", kGI32, -48));
    ExpectLoadError(neg, StatusCode::kInvalidArgument, "intermediate_size");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.Remove("llama.vocab_size");
    ExpectLoadError(m, StatusCode::kInvalidArgument, "vocab_size");
  }
}

TEST_F(GgufModelTest, TensorErrors) {
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.RemoveTensor("blk.0.ffn_up.weight");
    ExpectLoadError(m, StatusCode::kInvalidArgument, "model.layers.0.mlp.up_proj.weight [48, 32] is missing");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.tensors.push_back(F32("blk.0.attn_rot_embd.weight", {4}, rng_));
    ExpectLoadError(m, StatusCode::kInvalidArgument, "unexpected tensor 'blk.0.attn_rot_embd.weight'");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    m.tensors.push_back(F32("blk.1.attn_norm.weight", {32}, rng_));
    ExpectLoadError(m, StatusCode::kInvalidArgument, "unexpected tensor 'blk.1.attn_norm.weight'");
  }
  {
    ModelSpec m = MinimalModel("llama", rng_);
    *m.Tensor("blk.0.ffn_gate.weight") = F32("blk.0.ffn_gate.weight", {48, 32}, rng_);
    ExpectLoadError(m, StatusCode::kInvalidArgument, "has shape [32, 48], expected [48, 32]");
  }
  {  // a ggml type lserve cannot load (Q5_0)
    ModelSpec m = MinimalModel("llama", rng_);
    *m.Tensor("blk.0.ffn_up.weight") =
        GgufTestTensor{.name = "blk.0.ffn_up.weight", .type = 6, .ne = {32, 48}, .data = std::vector<uint8_t>(48 * 22)};
    ExpectLoadError(m, StatusCode::kUnimplemented, "Q5_0");
  }
  {  // qwen2 without its biases
    ModelSpec m = MinimalModel("qwen2", rng_);
    m.RemoveTensor("blk.0.attn_k.bias");
    ExpectLoadError(m, StatusCode::kInvalidArgument, "k_proj.bias");
  }
}

TEST(GgufNames, GgmlToHf) {
  EXPECT_EQ(HfTensorName("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(HfTensorName("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(HfTensorName("output.weight"), "lm_head.weight");
  EXPECT_EQ(HfTensorName("blk.0.attn_q.weight"), "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(HfTensorName("blk.12.attn_k.bias"), "model.layers.12.self_attn.k_proj.bias");
  EXPECT_EQ(HfTensorName("blk.3.attn_v.weight"), "model.layers.3.self_attn.v_proj.weight");
  EXPECT_EQ(HfTensorName("blk.3.attn_output.weight"), "model.layers.3.self_attn.o_proj.weight");
  EXPECT_EQ(HfTensorName("blk.3.ffn_gate.weight"), "model.layers.3.mlp.gate_proj.weight");
  EXPECT_EQ(HfTensorName("blk.3.ffn_up.weight"), "model.layers.3.mlp.up_proj.weight");
  EXPECT_EQ(HfTensorName("blk.3.ffn_down.weight"), "model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(HfTensorName("blk.3.attn_norm.weight"), "model.layers.3.input_layernorm.weight");
  EXPECT_EQ(HfTensorName("blk.3.ffn_norm.weight"), "model.layers.3.post_attention_layernorm.weight");
  for (const char* bad : {"blk.x.attn_q.weight", "blk.01.attn_q.weight", "blk.-1.attn_q.weight", "blk..attn_q.weight",
                          "blk.0.attn_q", "blk.0.attn_q.scale", "blk.0.attn_norm.bias", "blk.0.ffn_gate_exps.weight",
                          "token_embd.bias", "rope_freqs.weight", "blk.99999999999.attn_q.weight", ""})
    EXPECT_EQ(HfTensorName(bad), "") << bad;
}

TEST(GgufNames, UnpermuteIsTheInverseOfConvert) {
  std::mt19937 rng(std::random_device{}());
  for (int64_t heads : {1, 2, 3, 8}) {
    for (int64_t head_dim : {2, 4, 64}) {
      const int64_t rows = heads * head_dim, cols = 3;
      std::vector<float> hf = RandomFloats(rng, rows * cols);
      std::vector<float> g = PermuteLikeConvert(hf, rows, cols, heads);
      std::vector<float> back(hf.size());
      UnpermuteGgufRows(reinterpret_cast<const uint8_t*>(g.data()), reinterpret_cast<uint8_t*>(back.data()), rows,
                        cols * 4, heads);
      EXPECT_EQ(back, hf) << heads << " heads of " << head_dim;
    }
  }
}

// ---------------------------------------------------------------------------
// Fixtures: transformers' GGUF loader as the reference.

void ExpectConfigMatches(const ModelConfig& c, const nlohmann::json& hf) {
  EXPECT_EQ(c.model_type, hf["model_type"].get<std::string>());
  EXPECT_EQ(c.vocab_size, hf["vocab_size"].get<int64_t>());
  EXPECT_EQ(c.hidden_size, hf["hidden_size"].get<int64_t>());
  EXPECT_EQ(c.intermediate_size, hf["intermediate_size"].get<int64_t>());
  EXPECT_EQ(c.num_hidden_layers, hf["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(c.num_attention_heads, hf["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(c.num_key_value_heads, hf["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(c.head_dim, hf["head_dim"].get<int64_t>());
  EXPECT_EQ(c.rms_norm_eps, hf["rms_norm_eps"].get<double>());
  EXPECT_EQ(c.rope_theta, hf["rope_theta"].get<double>());
  EXPECT_EQ(c.max_position_embeddings, hf["max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(c.tie_word_embeddings, hf["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(c.bos_token_id, hf["bos_token_id"].get<int64_t>());
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{hf["eos_token_id"].get<int64_t>()});
  EXPECT_EQ(c.pad_token_id, hf["pad_token_id"].get<int64_t>());
}

// Every tensor of `model`, dequantized, equals transformers' tensor of the
// same HF name bit for bit.
void ExpectTensorsMatch(const GgufModel& model, const GgufFile& expected) {
  std::set<std::string> ours, theirs;
  for (const auto& t : model.tensors) ours.insert(t.name);
  for (const auto& t : expected.tensors()) theirs.insert(std::string(t.name));
  EXPECT_EQ(ours, theirs);
  for (const auto& t : model.tensors) {
    const GgufTensorInfo* want = expected.FindTensor(t.name);
    if (want == nullptr) continue;
    EXPECT_EQ(t.shape, want->shape()) << t.name;
    auto got = DequantizeTensor(t);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const std::vector<float> w = F32Data(want->data);
    ASSERT_EQ(got->size(), w.size()) << t.name;
    for (size_t i = 0; i < w.size(); ++i)
      ASSERT_EQ(BitsFromF32((*got)[i]), BitsFromF32(w[i])) << t.name << " element " << i;
  }
}

TEST(GgufFixtures, TinyLlamaMatchesTransformers) {
  auto file = GgufFile::Open(kFixtures + "tiny_llama.gguf");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto expected = GgufFile::Open(kFixtures + "tiny_llama.expected.gguf");
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  auto model = LoadGgufModel(*file);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ExpectConfigMatches(model->config, nlohmann::json::parse(*(*expected)->GetString("hf.config")));
  ExpectTensorsMatch(*model, **expected);
  EXPECT_EQ(model->config.num_key_value_heads, 2);
  EXPECT_FALSE(model->config.tie_word_embeddings);
  ASSERT_TRUE(model->rope_freqs.has_value());
  EXPECT_EQ(F32Data(model->rope_freqs->data), (std::vector<float>{1, 1, 1, 1.5, 2.5, 4, 8, 8}));
  // Quantized and plain Q/K were both rewritten.
  EXPECT_EQ(model->owned_buffers.size(), 4u);

  // The tokenizer and chat template metadata the tokenizer reads.
  const GgufFile& g = **file;
  EXPECT_EQ(*g.GetString("tokenizer.ggml.model"), "gpt2");
  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(static_cast<int64_t>(tokens->size()), model->config.vocab_size);
  EXPECT_EQ((*tokens)[*model->config.bos_token_id], "<|im_start|>");
  EXPECT_EQ((*tokens)[model->config.eos_token_ids[0]], "<|im_end|>");
  auto types = g.GetI32Array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[1], 3);
  EXPECT_EQ((*types)[100], 1);
  auto merges = g.GetStringArray("tokenizer.ggml.merges");
  ASSERT_TRUE(merges.ok());
  EXPECT_FALSE(merges->empty());
  EXPECT_NE((*merges)[0].find(' '), std::string_view::npos);
  EXPECT_EQ(*g.GetBool("tokenizer.ggml.add_bos_token"), false);
  auto tmpl = g.GetString("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_NE(tmpl->find("<|im_start|>"), std::string::npos);
}

TEST(GgufFixtures, TinyQwen2MatchesTransformers) {
  auto file = GgufFile::Open(kFixtures + "tiny_qwen2.gguf");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto expected = GgufFile::Open(kFixtures + "tiny_qwen2.expected.gguf");
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  auto model = LoadGgufModel(*file);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ExpectConfigMatches(model->config, nlohmann::json::parse(*(*expected)->GetString("hf.config")));
  ExpectTensorsMatch(*model, **expected);
  EXPECT_EQ(model->config.architecture, Architecture::kQwen2);
  EXPECT_TRUE(model->config.attention_bias);
  EXPECT_TRUE(model->config.tie_word_embeddings);
  EXPECT_EQ(model->config.num_key_value_heads, 1);
  EXPECT_TRUE(model->owned_buffers.empty());
}

// Mutations of the header and metadata of a complete model never crash the
// parser or the loader, and a loaded model's tensors always dequantize.
TEST(GgufFixtures, MutatedModelsAreSafe) {
  std::ifstream in(kFixtures + "tiny_qwen2.gguf", std::ios::binary);
  const std::vector<uint8_t> base((std::istreambuf_iterator<char>(in)), {});
  auto valid = GgufFile::Parse(base, "base");
  ASSERT_TRUE(valid.ok()) << valid.status().ToString();
  const size_t head = (*valid)->data_offset();
  const uint32_t seed = std::random_device()();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  int loaded = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::vector<uint8_t> bytes = base;
    for (int e = 1 + rng() % 3; e > 0; --e) {
      const size_t at = rng() % head;
      if (rng() % 2) {
        bytes[at] = static_cast<uint8_t>(rng());
      } else if (at + 8 <= bytes.size()) {
        const uint64_t v = (rng() % 2) ? UINT64_MAX : (uint64_t{1} << (rng() % 64));
        std::memcpy(bytes.data() + at, &v, 8);
      }
    }
    auto g = GgufFile::Parse(bytes, "mutated");
    if (!g.ok()) continue;
    auto m = LoadGgufModel(*g);
    if (!m.ok()) {
      EXPECT_FALSE(m.status().message().empty());
      continue;
    }
    ++loaded;
    for (const auto& t : m->tensors) ASSERT_TRUE(DequantizeTensor(t).ok()) << t.name;
  }
  EXPECT_GT(loaded, 0);
}

// The demo model (ignored by git; CI fetches it).
TEST(GgufFixtures, SmolLM2DemoModel) {
  if (!std::filesystem::exists(kDemoModel)) GTEST_SKIP() << kDemoModel << " is absent";
  auto file = GgufFile::Open(kDemoModel);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const GgufFile& g = **file;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.tensors().size(), 272u);
  EXPECT_EQ(g.metadata().size(), 33u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(g.GetI32Array("tokenizer.ggml.token_type")->size(), 49152u);
  EXPECT_EQ(*g.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.FindTensor("token_embd.weight")->type->name, "Q8_0");
  EXPECT_EQ(g.FindTensor("blk.0.attn_q.weight")->type->name, "Q4_1");

  auto model = LoadGgufModel(*file);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const ModelConfig& c = model->config;
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_NEAR(c.rms_norm_eps, 1e-5, 1e-12);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.pad_token_id, 2);
  EXPECT_EQ(model->tensors.size(), 272u);
  EXPECT_EQ(FindHf(*model, "lm_head.weight"), nullptr);

  // Rows as transformers' GGUF loader produces them (un-permuted Q/K).
  auto golden = GgufFile::Open(kFixtures + "smollm2_135m_golden.gguf");
  ASSERT_TRUE(golden.ok()) << golden.status().ToString();
  ExpectConfigMatches(c, nlohmann::json::parse(*(*golden)->GetString("hf.config")));
  int checked = 0;
  for (const GgufTensorInfo& want : (*golden)->tensors()) {
    const std::string name(want.name);
    const TensorInfo* t = FindHf(*model, name);
    ASSERT_NE(t, nullptr) << name;
    auto rows = (*golden)->GetIntArray("rows." + name);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    const int64_t cols = t->shape[1];
    const uint64_t row_bytes = *DTypeBytesFor(t->dtype, cols);
    const std::vector<float> w = F32Data(want.data);
    ASSERT_EQ(w.size(), rows->size() * cols);
    std::vector<float> row(cols);
    for (size_t k = 0; k < rows->size(); ++k) {
      ASSERT_TRUE(DequantizeRow(t->dtype, t->data.data() + (*rows)[k] * row_bytes, cols, row.data()).ok());
      for (int64_t j = 0; j < cols; ++j)
        ASSERT_EQ(BitsFromF32(row[j]), BitsFromF32(w[k * cols + j])) << name << " row " << (*rows)[k] << " col " << j;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 10 + 7 + 4 + 4 + 3 + 4);
}

}  // namespace
}  // namespace lserve
