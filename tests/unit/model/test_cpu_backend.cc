// The CPU backend: kernel choice, capability queries, buffers and copies,
// and bad kernel calls turned into a Status at the backend edge.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu_backend.h"
#include "backend/kernel_checks.h"

namespace lserve {
namespace {

TEST(ChooseCpuKernel, FollowsModeAndTypes) {
  for (CpuMode mode : {CpuMode::kReference, CpuMode::kFast}) {
    const CpuKernel want = mode == CpuMode::kReference ? CpuKernel::kReference : CpuKernel::kFast;
    for (DType w : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                    DType::kQ6_K}) {
      EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = w}), want) << DTypeName(w);
      EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kEmbedding, {.weight = w}), want) << DTypeName(w);
      // Rows of 256 elements are whole blocks of every type.
      EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = w, .row_elems = 256}), want);
    }
    // A row that is not a whole number of blocks.
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = DType::kQ4_K, .row_elems = 64}),
              CpuKernel::kUnsupported);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kEmbedding, {.weight = DType::kQ8_0, .row_elems = 48}),
              CpuKernel::kUnsupported);
    // Norm weights and biases: plain floats only.
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kRmsNorm, {.weight = DType::kBF16}), want);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kRmsNorm, {.weight = DType::kQ8_0}), CpuKernel::kUnsupported);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = DType::kF16, .bias = DType::kQ8_0}),
              CpuKernel::kUnsupported);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = DType::kF64}), CpuKernel::kUnsupported);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kLinear, {.weight = DType::kI32}), CpuKernel::kUnsupported);
    // Activations and the KV cache are f32 on the CPU.
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kSwiglu, {.activation = DType::kBF16}), CpuKernel::kUnsupported);
    EXPECT_EQ(ChooseCpuKernel(mode, KernelOp::kPagedAttention, {.kv = DType::kBF16}), CpuKernel::kUnsupported);
    for (KernelOp op : {KernelOp::kRope, KernelOp::kSwiglu, KernelOp::kKvAppend, KernelOp::kPagedAttention,
                        KernelOp::kMergeStates, KernelOp::kAdd}) {
      EXPECT_EQ(ChooseCpuKernel(mode, op, {}), want) << KernelOpName(op);
    }
  }
}

TEST(CpuBackend, SupportsDerivesFromTheChoice) {
  CpuBackend b(CpuBackendOptions{.mode = CpuMode::kReference});
  EXPECT_TRUE(b.Supports(KernelOp::kLinear, {.weight = DType::kQ4_1, .row_elems = 576}));
  EXPECT_FALSE(b.Supports(KernelOp::kLinear, {.weight = DType::kQ4_1, .row_elems = 577}));
  EXPECT_FALSE(b.Supports(KernelOp::kRmsNorm, {.weight = DType::kQ4_0}));
}

TEST(CpuBackend, DeviceInfo) {
  CpuBackend fast(CpuBackendOptions{.mode = CpuMode::kFast, .threads = 3});
  const DeviceInfo info = fast.Info();
  EXPECT_EQ(info.kind, "cpu");
  EXPECT_EQ(info.threads, 3);
  EXPECT_TRUE(info.host_addressable);
  EXPECT_GT(info.total_memory_bytes, 0u);
  EXPECT_EQ(info.memory_limit_bytes, info.total_memory_bytes);
  EXPECT_NE(info.name.find("fast"), std::string::npos);
  CpuBackend ref(CpuBackendOptions{.mode = CpuMode::kReference, .threads = 8});
  EXPECT_EQ(ref.Info().threads, 1);
  EXPECT_NE(ref.Info().name.find("reference"), std::string::npos);
}

TEST(CpuBackend, AllocationsAreAlignedCountedAndLimited) {
  CpuBackend b(CpuBackendOptions{.mode = CpuMode::kReference, .memory_limit_bytes = 4096});
  EXPECT_EQ(b.Allocate(0).status().code(), StatusCode::kInvalidArgument);
  auto x = b.Allocate(1000);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x->data()) % 64, 0u);
  EXPECT_EQ(x->size(), 1000u);
  EXPECT_TRUE(x->host_visible());
  EXPECT_EQ(b.Info().allocated_bytes, 1024u);  // rounded to 64 bytes
  auto y = b.Allocate(3500);
  EXPECT_EQ(y.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(b.Info().allocated_bytes, 1024u);  // a refusal takes nothing
  EXPECT_EQ(b.Allocate(uint64_t{1} << 62).status().code(), StatusCode::kResourceExhausted);
  {
    DeviceBuffer moved = std::move(x).value();
    EXPECT_EQ(b.Info().allocated_bytes, 1024u);
  }
  EXPECT_EQ(b.Info().allocated_bytes, 0u);
  EXPECT_TRUE(b.Allocate(4096).ok());
}

TEST(CpuBackend, BuffersMayOutliveTheBackend) {
  DeviceBuffer keep;
  {
    CpuBackend b(CpuBackendOptions{.mode = CpuMode::kReference});
    auto x = b.Allocate(128);
    ASSERT_TRUE(x.ok());
    keep = std::move(x).value();
  }
  keep.Reset();  // frees without touching the destroyed backend (ASan would see it)
  EXPECT_EQ(keep.data(), nullptr);
}

TEST(CpuBackend, CopiesCheckTheirRanges) {
  CpuBackend b(CpuBackendOptions{.mode = CpuMode::kReference});
  auto a = b.Allocate(64);
  auto c = b.Allocate(64);
  ASSERT_TRUE(a.ok() && c.ok());
  std::vector<uint8_t> host(64);
  for (int i = 0; i < 64; ++i) host[i] = static_cast<uint8_t>(i);
  ASSERT_TRUE(b.CopyToDevice(*a, 0, host.data(), 64).ok());
  ASSERT_TRUE(b.CopyOnDevice(*c, 8, *a, 0, 56).ok());
  ASSERT_TRUE(b.Memset(*c, 0, 8, 0xab).ok());
  std::vector<uint8_t> back(64);
  ASSERT_TRUE(b.CopyToHost(back.data(), *c, 0, 64).ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back[i], 0xab);
  for (int i = 8; i < 64; ++i) EXPECT_EQ(back[i], i - 8);
  EXPECT_EQ(b.CopyToDevice(*a, 1, host.data(), 64).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b.CopyToHost(back.data(), *a, 65, 0).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b.CopyOnDevice(*a, 0, *c, 32, 33).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b.Memset(*a, UINT64_MAX, 2, 0).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(b.Synchronize().ok());
}

TEST(CpuBackend, ImportWeightsViewsAlignedBytesAndCopiesOthers) {
  CpuBackend b(CpuBackendOptions{.mode = CpuMode::kReference});
  auto owner = std::make_shared<std::vector<float>>(16, 1.5f);
  const auto* bytes = reinterpret_cast<const uint8_t*>(owner->data());
  auto view = b.ImportWeights({bytes, 64}, 4, owner);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->data(), bytes);                // in place
  EXPECT_EQ(b.Info().allocated_bytes, 0u);       // views cost nothing
  EXPECT_EQ(owner.use_count(), 2);               // the view keeps the memory alive
  auto copy = b.ImportWeights({bytes + 2, 32}, 4, owner);
  ASSERT_TRUE(copy.ok());
  EXPECT_NE(copy->data(), bytes + 2);
  EXPECT_EQ(std::memcmp(copy->data(), bytes + 2, 32), 0);
  EXPECT_EQ(b.ImportWeights({bytes, 64}, 3, owner).status().code(), StatusCode::kInvalidArgument);
  view->Reset();
  EXPECT_EQ(owner.use_count(), 1);
}

// Bad calls come back as a Status, before any kernel runs.
TEST(CpuBackend, KernelCallsAreCheckedAtTheEdge) {
  for (CpuMode mode : {CpuMode::kReference, CpuMode::kFast}) {
    CpuBackend b(CpuBackendOptions{.mode = mode, .threads = 2});
    std::vector<float> x(64, 1.0f), y(64, 0.0f), w(64, 0.5f);
    // linear: unsupported weight type, rows not whole blocks, aliasing.
    LinearParams lin{.x = x.data(), .w = w.data(), .w_dtype = DType::kF32, .bias = nullptr,
                     .bias_dtype = DType::kF32, .y = y.data(), .m = 2, .n = 4, .k = 8};
    EXPECT_TRUE(b.Linear(lin).ok());
    LinearParams bad = lin;
    bad.w_dtype = DType::kI32;
    EXPECT_EQ(b.Linear(bad).code(), StatusCode::kUnimplemented);
    bad = lin;
    bad.w_dtype = DType::kQ8_0;
    EXPECT_EQ(b.Linear(bad).code(), StatusCode::kInvalidArgument);  // k = 8 is not a Q8_0 block
    bad = lin;
    bad.y = x.data();
    EXPECT_EQ(b.Linear(bad).code(), StatusCode::kInvalidArgument);
    bad = lin;
    bad.k = -1;
    EXPECT_EQ(b.Linear(bad).code(), StatusCode::kInvalidArgument);
    // embedding: ids outside the vocabulary.
    std::vector<int32_t> ids = {0, 3, 4};
    EmbeddingParams emb{.table = w.data(), .dtype = DType::kF32, .vocab = 4, .hidden = 16, .ids = ids.data(), .n = 3,
                        .out = y.data()};
    EXPECT_EQ(b.Embedding(emb).code(), StatusCode::kOutOfRange);
    ids[2] = -1;
    EXPECT_EQ(b.Embedding(emb).code(), StatusCode::kOutOfRange);
    ids[2] = 1;
    EXPECT_TRUE(b.Embedding(emb).ok());
    EXPECT_EQ(y[16 * 2], 0.5f);
    // rmsnorm: quantized weight, bad eps.
    RmsNormParams rms{.x = x.data(), .weight = w.data(), .weight_dtype = DType::kQ4_0, .out = y.data(), .n = 2,
                      .dim = 32, .eps = 1e-6f};
    EXPECT_EQ(b.RmsNorm(rms).code(), StatusCode::kUnimplemented);
    rms.weight_dtype = DType::kF32;
    rms.eps = NAN;
    EXPECT_EQ(b.RmsNorm(rms).code(), StatusCode::kInvalidArgument);
    // rope: odd head_dim.
    std::vector<int64_t> pos = {0, 1};
    RopeParams rope{.q = x.data(), .k = nullptr, .n = 2, .n_q_heads = 1, .n_kv_heads = 1, .head_dim = 7,
                    .positions = pos.data(), .inv_freq = w.data(), .attention_scaling = 1.0f};
    EXPECT_EQ(b.Rope(rope).code(), StatusCode::kInvalidArgument);
    // attention: GQA not dividing, q_start not starting at 0, too few pages.
    std::vector<int64_t> q_start = {0, 2}, q_pos0 = {0}, kv_len = {2}, pt_start = {0, 1};
    std::vector<int32_t> pages = {0};
    std::vector<float> kc(64, 0.0f), vc(64, 0.0f), out(64, 0.0f);
    PagedAttentionParams att{.q = x.data(), .out = out.data(), .lse = nullptr, .n_q_heads = 2, .n_kv_heads = 1,
                             .head_dim = 4, .scale = 0.5f, .n_seqs = 1, .q_start = q_start.data(),
                             .q_pos0 = q_pos0.data(), .kv_len = kv_len.data(), .page_table = pages.data(),
                             .page_table_start = pt_start.data(), .k_cache = kc.data(), .v_cache = vc.data(),
                             .page_size = 16, .pool_head_of_kv_head = 0};
    EXPECT_TRUE(b.PagedAttention(att).ok());
    PagedAttentionParams a2 = att;
    a2.n_kv_heads = 3;
    EXPECT_EQ(b.PagedAttention(a2).code(), StatusCode::kInvalidArgument);
    q_start[0] = 1;
    EXPECT_EQ(b.PagedAttention(att).code(), StatusCode::kInvalidArgument);
    q_start[0] = 0;
    kv_len[0] = 17;  // needs two pages of 16
    EXPECT_EQ(b.PagedAttention(att).code(), StatusCode::kInvalidArgument);
    kv_len[0] = 2;
    pages[0] = -1;
    EXPECT_EQ(b.PagedAttention(att).code(), StatusCode::kInvalidArgument);
    // kv_append: a slot offset outside its page, a pool head outside the kv heads.
    std::vector<int32_t> heads = {0}, slot_page = {0, 0}, slot_offset = {0, 16};
    KvAppendParams app{.k = x.data(), .v = x.data(), .n_tokens = 2, .n_kv_heads = 1, .head_dim = 2,
                       .pool_heads = heads.data(), .n_pool_heads = 1, .k_cache = kc.data(), .v_cache = vc.data(),
                       .page_size = 16, .slot_page = slot_page.data(), .slot_offset = slot_offset.data(),
                       .k_stats = nullptr, .logical_page_size = 16, .positions = pos.data()};
    EXPECT_EQ(b.KvAppend(app).code(), StatusCode::kInvalidArgument);
    slot_offset[1] = 1;
    EXPECT_TRUE(b.KvAppend(app).ok());
    heads[0] = 1;
    EXPECT_EQ(b.KvAppend(app).code(), StatusCode::kInvalidArgument);
    // add.
    EXPECT_TRUE(b.Add(AddParams{.a = x.data(), .b = w.data(), .out = y.data(), .n = 64}).ok());
    EXPECT_EQ(y[63], 1.5f);
    EXPECT_EQ(b.Add(AddParams{.a = nullptr, .b = w.data(), .out = y.data(), .n = 64}).code(),
              StatusCode::kInvalidArgument);
    // Empty calls are fine.
    lin.m = 0;
    EXPECT_TRUE(b.Linear(lin).ok());
  }
}

// The two modes compute the same thing (the conformance suite covers every
// kernel in depth; this checks the dispatch).
TEST(CpuBackend, FastAndReferenceAgreeOnALinear) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> dist;
  const int64_t m = 5, n = 33, k = 64;
  std::vector<float> x(m * k), w(n * k), bias(n), y_ref(m * n, NAN), y_fast(m * n, NAN);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  for (float& v : bias) v = dist(rng);
  CpuBackend ref(CpuBackendOptions{.mode = CpuMode::kReference});
  CpuBackend fast(CpuBackendOptions{.mode = CpuMode::kFast, .threads = 2});
  LinearParams p{.x = x.data(), .w = w.data(), .w_dtype = DType::kF32, .bias = bias.data(),
                 .bias_dtype = DType::kF32, .y = y_ref.data(), .m = m, .n = n, .k = k};
  ASSERT_TRUE(ref.Linear(p).ok());
  p.y = y_fast.data();
  ASSERT_TRUE(fast.Linear(p).ok());
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(y_fast[i], y_ref[i], 1e-4f * (1.0f + std::fabs(y_ref[i])));
}

}  // namespace
}  // namespace lserve
