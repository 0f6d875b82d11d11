// The LServe attention through the whole model (DESIGN.md §4): the exactness
// rules against the dense engine, sparsity that really skips pages, and the
// LSERVE.md hazards seen from the model (per-sequence lengths in a batch,
// ring rotation across chunks, pages past a sequence's end, reuse across a
// page boundary).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model_test_util.h"

namespace lserve::testing {
namespace {

constexpr int64_t kPage = 16;

ModelOptions Options(AttentionMode mode, std::vector<std::vector<int>> roles = {}, int64_t chunk = 64) {
  ModelOptions o;
  o.kv_page_size = kPage;
  o.kv_logical_page_size = 4;
  o.kv_cache_tokens = 2048;
  o.max_sequences = 4;
  o.prefill_chunk = chunk;
  o.poison_kv_cache = true;  // a slot read before it was written turns the logits NaN
  o.attention.mode = mode;
  o.attention.head_roles = std::move(roles);
  return o;
}

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = dist(rng);
  return ids;
}

// The logits of every prompt position (prefill in chunks) and of each decode
// step feeding `forced` one token at a time; the sparsity of all steps.
struct SeqRun {
  std::vector<float> logits;
  SparsityStats sparsity;
};

SeqRun RunSequence(LoadedModel& m, const std::vector<int32_t>& prompt, const std::vector<int32_t>& forced,
                int64_t chunk) {
  SeqRun r;
  const int64_t seq = m.next_seq++;
  EXPECT_TRUE(m.kv->AddSequence(seq).ok());
  const int64_t n = static_cast<int64_t>(prompt.size());
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    EXPECT_TRUE(m.kv->Grow(seq, end).ok());
    BatchPlan plan;
    plan.steps.push_back(SequenceStep{.seq_id = seq,
                                      .start_pos = start,
                                      .tokens = std::vector<int32_t>(prompt.begin() + start, prompt.begin() + end),
                                      .is_decode = false,
                                      .logits = LogitsWanted::kAll});
    ForwardOutput out;
    const Status st = m.model->Forward(plan, *m.kv, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    r.logits.insert(r.logits.end(), out.logits.begin(), out.logits.end());
    r.sparsity += out.sparsity;
  }
  EXPECT_TRUE(m.kv->BeginDecode(seq).ok());
  int64_t len = n;
  for (int32_t token : forced) {
    EXPECT_TRUE(m.kv->Grow(seq, len + 1).ok());
    BatchPlan plan;
    plan.steps.push_back(SequenceStep{
        .seq_id = seq, .start_pos = len, .tokens = {token}, .is_decode = true, .logits = LogitsWanted::kLast});
    ForwardOutput out;
    const Status st = m.model->Forward(plan, *m.kv, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    r.logits.insert(r.logits.end(), out.logits.begin(), out.logits.end());
    r.sparsity += out.sparsity;
    ++len;
  }
  EXPECT_TRUE(m.kv->Free(seq).ok());
  return r;
}

bool BitIdentical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool AllFinite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Half the KV heads of every layer streaming (layer l: head l % 2), and one
// layer entirely streaming, one entirely retrieval.
std::vector<std::vector<int>> MixedRoles(int64_t layers, int64_t heads) {
  std::vector<std::vector<int>> roles(static_cast<size_t>(layers), std::vector<int>(static_cast<size_t>(heads), 1));
  for (int64_t l = 0; l < layers; ++l) {
    if (l == 0) continue;  // all retrieval
    for (int64_t h = 0; h < heads; ++h) {
      roles[static_cast<size_t>(l)][static_cast<size_t>(h)] = (l == 1 || h % 2 == l % 2) ? 0 : 1;
    }
  }
  return roles;
}

const std::string kFixture = "llama3_gqa";

// Exactness rule 1: every head retrieval and the budget >= the context: the
// sparse engine gives the dense engine's bits (reference kernels), prefill
// and decode alike.
TEST(LServeModel, AllRetrievalWithinBudgetIsBitIdenticalToDense) {
  LoadedModel dense = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  LoadedModel sparse = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kLServe));
  ASSERT_TRUE(dense.model && sparse.model);
  const std::vector<int32_t> prompt = RandomIds(150, dense.vocab(), 1);
  const std::vector<int32_t> forced = RandomIds(40, dense.vocab(), 2);
  const SeqRun a = RunSequence(dense, prompt, forced, 64);
  const SeqRun b = RunSequence(sparse, prompt, forced, 64);
  EXPECT_TRUE(AllFinite(a.logits));
  EXPECT_TRUE(BitIdentical(a.logits, b.logits));
  EXPECT_EQ(b.sparsity.prefill_blocks_visited, b.sparsity.prefill_blocks_dense);
  EXPECT_EQ(b.sparsity.decode_pages_read, b.sparsity.decode_pages_dense);
  EXPECT_EQ(a.sparsity.prefill_blocks_dense, b.sparsity.prefill_blocks_dense);
  EXPECT_EQ(a.sparsity.decode_pages_dense, b.sparsity.decode_pages_dense);
}

// Exactness rule 2: streaming heads whose sink + local cover the context are
// dense too, in prefill (chunked, the ring rotating) and in decode.
TEST(LServeModel, StreamingHeadsWithWindowsCoveringTheContextAreBitIdenticalToDense) {
  LoadedModel dense = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  const ModelConfig& c = dense.config();
  ModelOptions o = Options(AttentionMode::kLServe, MixedRoles(c.num_hidden_layers, c.num_key_value_heads));
  o.attention.prefill_sink = 8;
  o.attention.prefill_local = 200;
  o.attention.decode_sink = 8;
  o.attention.decode_local = 200;
  LoadedModel sparse = LoadModel(FixtureDir(kFixture), CpuMode::kReference, o);
  ASSERT_TRUE(dense.model && sparse.model);
  const std::vector<int32_t> prompt = RandomIds(150, dense.vocab(), 3);
  const std::vector<int32_t> forced = RandomIds(40, dense.vocab(), 4);  // 190 tokens < sink + local
  const SeqRun a = RunSequence(dense, prompt, forced, 64);
  const SeqRun b = RunSequence(sparse, prompt, forced, 64);
  EXPECT_TRUE(BitIdentical(a.logits, b.logits));
}

// With small windows and a small budget the sparse engine reads fewer pages
// than dense attention would, never reads an unwritten (NaN) slot, and the
// fast kernels agree with the reference kernels.
TEST(LServeModel, SmallWindowsAndBudgetSkipPagesAndMatchTheReference) {
  LoadedModel probe = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  const ModelConfig& c = probe.config();
  ModelOptions o = Options(AttentionMode::kLServe, MixedRoles(c.num_hidden_layers, c.num_key_value_heads), 48);
  o.attention.prefill_sink = 4;
  o.attention.prefill_local = 40;
  o.attention.decode_sink = 4;
  o.attention.decode_local = 20;
  o.attention.token_budget = 48;  // K = 3 pages
  o.attention.select_interval = 3;
  LoadedModel ref = LoadModel(FixtureDir(kFixture), CpuMode::kReference, o);
  LoadedModel fast = LoadModel(FixtureDir(kFixture), CpuMode::kFast, o);
  ASSERT_TRUE(ref.model && fast.model);
  const std::vector<int32_t> prompt = RandomIds(200, c.vocab_size, 5);
  const std::vector<int32_t> forced = RandomIds(37, c.vocab_size, 6);  // crosses two page boundaries
  const SeqRun a = RunSequence(ref, prompt, forced, 48);
  const SeqRun b = RunSequence(fast, prompt, forced, 48);
  EXPECT_TRUE(AllFinite(a.logits));
  EXPECT_LT(a.sparsity.prefill_blocks_visited, a.sparsity.prefill_blocks_dense);
  EXPECT_LT(a.sparsity.decode_pages_read, a.sparsity.decode_pages_dense);
  EXPECT_EQ(a.sparsity.prefill_blocks_visited, b.sparsity.prefill_blocks_visited);
  EXPECT_EQ(a.sparsity.decode_pages_read, b.sparsity.decode_pages_read);
  EXPECT_LT(MaxAbsDiff(a.logits, b.logits), 1e-3f * std::max(1.0f, MaxAbs(a.logits)));
}

// Chunking does not change a Λ head's key set: one-token chunks (the ring
// rotating at every step) and 48-token chunks give the same bits.
TEST(LServeModel, RingRotationAcrossChunksKeepsPrefillExact) {
  LoadedModel probe = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  const ModelConfig& c = probe.config();
  ModelOptions o = Options(AttentionMode::kLServe, MixedRoles(c.num_hidden_layers, c.num_key_value_heads), 48);
  o.attention.prefill_sink = 5;
  o.attention.prefill_local = 23;
  LoadedModel m = LoadModel(FixtureDir(kFixture), CpuMode::kReference, o);
  ASSERT_TRUE(m.model);
  const std::vector<int32_t> prompt = RandomIds(130, c.vocab_size, 7);
  const SeqRun whole = RunSequence(m, prompt, {}, 48);
  const SeqRun steps = RunSequence(m, prompt, {}, 1);
  EXPECT_TRUE(AllFinite(whole.logits));
  EXPECT_TRUE(BitIdentical(whole.logits, steps.logits));
}

// Per-sequence lengths in a batch: sequences of different lengths decoding
// in one step (selection active for the long ones, dense for the short one)
// give the logits each gives alone.
TEST(LServeModel, BatchedSequencesOfDifferentLengthsMatchTheirSoloRuns) {
  LoadedModel probe = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  const ModelConfig& c = probe.config();
  ModelOptions o = Options(AttentionMode::kLServe, MixedRoles(c.num_hidden_layers, c.num_key_value_heads), 64);
  o.attention.decode_local = 24;
  o.attention.prefill_local = 64;
  o.attention.token_budget = 48;
  LoadedModel m = LoadModel(FixtureDir(kFixture), CpuMode::kReference, o);
  ASSERT_TRUE(m.model);
  const std::vector<int64_t> lengths = {40, 100, 171};
  const int64_t steps = 12;
  std::vector<std::vector<int32_t>> prompts, forced;
  std::vector<std::vector<float>> solo;
  for (size_t i = 0; i < lengths.size(); ++i) {
    prompts.push_back(RandomIds(lengths[i], c.vocab_size, 10 + static_cast<uint32_t>(i)));
    forced.push_back(RandomIds(steps, c.vocab_size, 20 + static_cast<uint32_t>(i)));
    const SeqRun r = RunSequence(m, prompts[i], forced[i], 64);
    solo.emplace_back(r.logits.end() - steps * c.vocab_size, r.logits.end());
  }
  // Prefill each alone, then decode all three in the same steps.
  std::vector<int64_t> ids;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t seq = m.next_seq++;
    ids.push_back(seq);
    ASSERT_TRUE(m.kv->AddSequence(seq).ok());
    PrefillAll(m, seq, prompts[i], 64, LogitsWanted::kNone);
    ASSERT_TRUE(m.kv->BeginDecode(seq).ok());
  }
  std::vector<std::vector<float>> batched(lengths.size());
  for (int64_t t = 0; t < steps; ++t) {
    BatchPlan plan;
    for (size_t i = 0; i < lengths.size(); ++i) {
      const int64_t pos = lengths[i] + t;
      ASSERT_TRUE(m.kv->Grow(ids[i], pos + 1).ok());
      plan.steps.push_back(SequenceStep{.seq_id = ids[i],
                                        .start_pos = pos,
                                        .tokens = {forced[i][static_cast<size_t>(t)]},
                                        .is_decode = true,
                                        .logits = LogitsWanted::kLast});
    }
    ForwardOutput out;
    ASSERT_TRUE(m.model->Forward(plan, *m.kv, &out).ok());
    for (size_t i = 0; i < lengths.size(); ++i) {
      const auto row = out.row(i);
      batched[i].insert(batched[i].end(), row.begin(), row.end());
    }
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    EXPECT_TRUE(BitIdentical(solo[i], batched[i])) << "sequence of length " << lengths[i];
    EXPECT_TRUE(m.kv->Free(ids[i]).ok());
  }
}

// A prefill chunk longer than the streaming rings were sized for is refused
// (it would evict keys the chunk's first queries need), not computed wrongly.
TEST(LServeModel, ChunkLongerThanTheRingsAreSizedForIsRefused) {
  LoadedModel probe = LoadModel(FixtureDir(kFixture), CpuMode::kReference, Options(AttentionMode::kDense));
  const ModelConfig& c = probe.config();
  LoadedModel m = LoadModel(FixtureDir(kFixture), CpuMode::kReference,
                            Options(AttentionMode::kLServe, MixedRoles(c.num_hidden_layers, c.num_key_value_heads), 32));
  ASSERT_TRUE(m.model);
  ASSERT_TRUE(m.kv->AddSequence(1).ok());
  ASSERT_TRUE(m.kv->Grow(1, 40).ok());
  BatchPlan plan;
  plan.steps.push_back(SequenceStep{.seq_id = 1,
                                    .start_pos = 0,
                                    .tokens = RandomIds(40, c.vocab_size, 9),
                                    .is_decode = false,
                                    .logits = LogitsWanted::kLast});
  ForwardOutput out;
  const Status st = m.model->Forward(plan, *m.kv, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST(LServeModel, BadAttentionOptionsAreErrors) {
  auto source = OpenModel(FixtureDir(kFixture));
  ASSERT_TRUE(source.ok());
  CpuBackend backend(CpuBackendOptions{.mode = CpuMode::kReference});
  ModelOptions roles_without_lserve = Options(AttentionMode::kDense, {{1, 0}, {1, 1}, {0, 0}});
  EXPECT_EQ(LlamaModel::Load(*source, backend, roles_without_lserve).status().code(), StatusCode::kInvalidArgument);
  ModelOptions wrong_shape = Options(AttentionMode::kLServe, {{1, 0}});
  EXPECT_EQ(LlamaModel::Load(*source, backend, wrong_shape).status().code(), StatusCode::kInvalidArgument);
  ModelOptions tiny_budget = Options(AttentionMode::kLServe);
  tiny_budget.attention.token_budget = kPage - 1;
  EXPECT_EQ(LlamaModel::Load(*source, backend, tiny_budget).status().code(), StatusCode::kInvalidArgument);
  ModelOptions zero_interval = Options(AttentionMode::kLServe);
  zero_interval.attention.select_interval = 0;
  EXPECT_EQ(LlamaModel::Load(*source, backend, zero_interval).status().code(), StatusCode::kInvalidArgument);
}

// The probe of `lserve calibrate` does not change the forward's outputs and
// measures shares in [0, 1]; a window as wide as the text keeps everything.
TEST(LServeModel, AttentionProbeMeasuresKeptMass) {
  LoadedModel m = LoadModel(FixtureDir(kFixture), CpuMode::kFast, Options(AttentionMode::kDense));
  ASSERT_TRUE(m.model);
  const std::vector<int32_t> ids = RandomIds(120, m.vocab(), 11);
  const std::vector<float> plain = OneShotLogits(m, ids);
  for (const int64_t local : {int64_t{8}, int64_t{1000}}) {
    AttentionProbe probe{.sink = 4, .local = local, .min_position = 12};
    const int64_t seq = m.next_seq++;
    ASSERT_TRUE(m.kv->AddSequence(seq).ok());
    ASSERT_TRUE(m.kv->Grow(seq, 120).ok());
    BatchPlan plan;
    plan.steps.push_back(
        SequenceStep{.seq_id = seq, .start_pos = 0, .tokens = ids, .is_decode = false, .logits = LogitsWanted::kAll});
    ForwardOutput out;
    ASSERT_TRUE(m.model->Forward(plan, *m.kv, &out, &probe).ok());
    ASSERT_TRUE(m.kv->Free(seq).ok());
    EXPECT_TRUE(BitIdentical(plain, out.logits));
    EXPECT_EQ(probe.rows, 120 - 12);
    ASSERT_EQ(probe.kept_mass.size(), static_cast<size_t>(m.config().num_hidden_layers * m.config().num_key_value_heads));
    for (double kept : probe.kept_mass) {
      const double share = kept / static_cast<double>(probe.rows);
      EXPECT_GE(share, 0.0);
      EXPECT_LE(share, 1.0 + 1e-9);
      if (local == 1000) EXPECT_NEAR(share, 1.0, 1e-5);
      if (local == 8) EXPECT_LT(share, 0.999);
    }
  }
}

}  // namespace
}  // namespace lserve::testing
