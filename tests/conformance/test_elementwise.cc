// Embedding, RMSNorm, RoPE, SwiGLU and KV append: CPU vs reference vs f64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "formats/gguf_quant.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/kv_append.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/kv_append.h"
#include "kernels/ref/rmsnorm.h"
#include "kernels/ref/rope.h"
#include "kernels/ref/swiglu.h"
#include "kernels/ref/weight_element.h"

namespace lserve::conformance {
namespace {

const std::vector<int64_t> kLengths = {1, 3, 17, 97, 129, 257};

TEST(ConformanceEmbedding, EveryTableDtype) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                  DType::kQ6_K}) {
    const int64_t block = DTypeBlockElems(t);
    for (int64_t hidden : {block == 1 ? int64_t{17} : block, block == 1 ? int64_t{576} : 3 * block}) {
      for (int64_t n : {1, 3, 97}) {
        SCOPED_TRACE(testing::Message() << DTypeName(t) << " hidden=" << hidden << " n=" << n);
        const int64_t vocab = 129;
        const std::vector<uint8_t> table = RandomWeights(rng, t, vocab, hidden);
        std::vector<int32_t> ids(n);
        for (int32_t& id : ids) id = std::uniform_int_distribution<int32_t>(0, vocab - 1)(rng);
        ids[0] = vocab - 1;  // the last row
        std::vector<float> out_ref(n * hidden), out_cpu(n * hidden);
        Poison(out_ref);
        Poison(out_cpu);
        EmbeddingParams p{table.data(), t, vocab, hidden, ids.data(), n, out_ref.data()};
        EmbeddingRef(p);
        p.out = out_cpu.data();
        EmbeddingCpu(p, pool);
        // Dequantization is exact: both equal DequantizeRow of the row, bit for bit.
        const uint64_t row_bytes = *DTypeBytesFor(t, hidden);
        std::vector<float> expected(n * hidden);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_TRUE(DequantizeRow(t, table.data() + ids[i] * row_bytes, hidden, expected.data() + i * hidden).ok());
        }
        EXPECT_EQ(out_ref, expected);
        EXPECT_EQ(out_cpu, expected);
      }
    }
  }
  EXPECT_FALSE(EmbeddingSupports(DType::kQ4_K, 128));
  EXPECT_TRUE(EmbeddingSupports(DType::kQ8_0, 64));
}

TEST(ConformanceRmsNorm, LengthsAndWeightDtypes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (DType wt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t dim : {1, 3, 17, 97, 576, 2048}) {
      for (int64_t n : {1, 3, 129}) {
        SCOPED_TRACE(testing::Message() << DTypeName(wt) << " dim=" << dim << " n=" << n);
        const std::vector<float> x = RandomFloats(rng, n * dim, -4.0f, 4.0f);
        const std::vector<uint8_t> w = RandomWeights(rng, wt, 1, dim);
        const float eps = 1e-5f;
        std::vector<float> out_ref(n * dim), out_cpu(n * dim);
        Poison(out_ref);
        Poison(out_cpu);
        RmsNormParams p{x.data(), w.data(), wt, out_ref.data(), n, dim, eps};
        RmsNormRef(p);
        p.out = out_cpu.data();
        RmsNormCpu(p, pool);
        std::vector<double> oracle(n * dim), scale(n * dim);
        for (int64_t r = 0; r < n; ++r) {
          double ss = 0.0;
          for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
          const double inv = 1.0 / std::sqrt(ss / dim + eps);
          for (int64_t i = 0; i < dim; ++i) {
            oracle[r * dim + i] = LoadPlainFloat(w.data(), wt, i) * (x[r * dim + i] * inv);
            scale[r * dim + i] = std::fabs(oracle[r * dim + i]) + 1e-30;
          }
        }
        EXPECT_WITHIN_REFERENCE_ERROR(MaxScaledDiff(out_cpu, oracle, scale), MaxScaledDiff(out_ref, oracle, scale),
                                      4 * kF32Eps);
        // In place (out aliases x).
        std::vector<float> in_place = x;
        p.x = in_place.data();
        p.out = in_place.data();
        RmsNormCpu(p, pool);
        EXPECT_EQ(in_place, out_cpu);
      }
    }
  }
}

TEST(ConformanceRope, HeadsPositionsAndScaling) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (int64_t head_dim : {16, 64, 128}) {
    for (int64_t group : {1, 4, 8}) {
      for (int64_t n : {1, 17, 97}) {
        SCOPED_TRACE(testing::Message() << "head_dim=" << head_dim << " group=" << group << " n=" << n);
        const int64_t kv = 2, nq = kv * group, half = head_dim / 2;
        std::vector<float> q = RandomFloats(rng, n * nq * head_dim), k = RandomFloats(rng, n * kv * head_dim);
        std::vector<int64_t> positions(n);
        std::iota(positions.begin(), positions.end(), std::uniform_int_distribution<int64_t>(0, 5000)(rng));
        std::shuffle(positions.begin(), positions.end(), rng);  // rows need not be in position order
        std::vector<float> inv_freq(half);
        for (int64_t i = 0; i < half; ++i) inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / head_dim));
        const float scaling = group == 4 ? 1.25f : 1.0f;
        std::vector<float> q_ref = q, k_ref = k, q_cpu = q, k_cpu = k;
        RopeParams p{q_ref.data(), k_ref.data(), n, nq, kv, head_dim, positions.data(), inv_freq.data(), scaling};
        RopeRef(p);
        p.q = q_cpu.data();
        p.k = k_cpu.data();
        RopeCpu(p, pool);
        // f64 oracle from the same f32 angle (HF rounds pos * inv_freq to f32).
        auto oracle_of = [&](const std::vector<float>& v, int64_t heads) {
          std::vector<double> o(v.size());
          for (int64_t t = 0; t < n; ++t) {
            for (int64_t h = 0; h < heads; ++h) {
              const float* x = v.data() + (t * heads + h) * head_dim;
              for (int64_t i = 0; i < half; ++i) {
                const double angle = static_cast<float>(positions[t]) * inv_freq[i];
                const double c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
                o[(t * heads + h) * head_dim + i] = x[i] * c - x[i + half] * s;
                o[(t * heads + h) * head_dim + i + half] = x[i + half] * c + x[i] * s;
              }
            }
          }
          return o;
        };
        const std::vector<double> q_oracle = oracle_of(q, nq), k_oracle = oracle_of(k, kv);
        EXPECT_WITHIN_REFERENCE_ERROR(MaxAbsDiff(q_cpu, q_oracle), MaxAbsDiff(q_ref, q_oracle), 4 * kF32Eps);
        EXPECT_WITHIN_REFERENCE_ERROR(MaxAbsDiff(k_cpu, k_oracle), MaxAbsDiff(k_ref, k_oracle), 4 * kF32Eps);
        EXPECT_LE(MaxAbsDiff(q_ref, q_oracle), 8 * kF32Eps);

        // Same positions buffer, new contents: the CPU kernel's cos/sin cache
        // must notice. Only k is rotated this time (q null).
        for (int64_t& pos : positions) pos += 7;
        std::vector<float> k2_ref = k, k2_cpu = k;
        RopeParams pk{nullptr, k2_ref.data(), n, 0, kv, head_dim, positions.data(), inv_freq.data(), scaling};
        RopeRef(pk);
        pk.k = k2_cpu.data();
        RopeCpu(pk, pool);
        const std::vector<double> k2_oracle = oracle_of(k, kv);
        EXPECT_WITHIN_REFERENCE_ERROR(MaxAbsDiff(k2_cpu, k2_oracle), MaxAbsDiff(k2_ref, k2_oracle), 4 * kF32Eps);
      }
    }
  }
}

TEST(ConformanceSwiglu, LengthsAndRanges) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (int64_t inter : kLengths) {
    for (int64_t m : {1, 3, 17}) {
      for (float range : {1.0f, 12.0f, 120.0f}) {  // 120: exp over- and underflow territory
        SCOPED_TRACE(testing::Message() << "inter=" << inter << " m=" << m << " range=" << range);
        const std::vector<float> gate = RandomFloats(rng, m * inter, -range, range);
        const std::vector<float> up = RandomFloats(rng, m * inter, -2.0f, 2.0f);
        std::vector<float> out_ref(m * inter), out_cpu(m * inter);
        Poison(out_ref);
        Poison(out_cpu);
        SwigluParams p{gate.data(), up.data(), out_ref.data(), m, inter};
        SwigluRef(p);
        p.out = out_cpu.data();
        SwigluCpu(p, pool);
        std::vector<double> oracle(m * inter), scale(m * inter);
        for (int64_t i = 0; i < m * inter; ++i) {
          const double g = gate[i];
          oracle[i] = g / (1.0 + std::exp(-g)) * up[i];
          // Errors relative to |out|, with an absolute floor of 1e-20 where silu
          // underflows (g << 0: the exact value is below f32's range).
          scale[i] = std::max(std::fabs(oracle[i]), 1e-20);
        }
        EXPECT_WITHIN_REFERENCE_ERROR(MaxScaledDiff(out_cpu, oracle, scale), MaxScaledDiff(out_ref, oracle, scale),
                                      8 * kF32Eps);
        // out aliasing gate
        std::vector<float> in_place = gate;
        SwigluCpu({in_place.data(), up.data(), in_place.data(), m, inter}, pool);
        EXPECT_EQ(in_place, out_cpu);
      }
    }
  }
}

// The portable paths of the elementwise kernels against the SIMD ones (and,
// through the tests above, the reference).
TEST(ConformanceElementwise, ScalarFallbackMatchesReference) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  ScalarKernelsScope scalar;
  const int64_t m = 3, dim = 97;
  const std::vector<float> x = RandomFloats(rng, m * dim, -4.0f, 4.0f), up = RandomFloats(rng, m * dim);
  const std::vector<uint8_t> w = RandomWeights(rng, DType::kBF16, 1, dim);
  std::vector<float> ref(m * dim), cpu(m * dim);
  RmsNormRef({x.data(), w.data(), DType::kBF16, ref.data(), m, dim, 1e-6f});
  RmsNormCpu({x.data(), w.data(), DType::kBF16, cpu.data(), m, dim, 1e-6f}, pool);
  EXPECT_EQ(ref, cpu);  // same operations in the same order
  SwigluRef({x.data(), up.data(), ref.data(), m, dim});
  SwigluCpu({x.data(), up.data(), cpu.data(), m, dim}, pool);
  EXPECT_EQ(ref, cpu);
  const std::vector<uint8_t> table = RandomWeights(rng, DType::kQ4_K, 7, 256);
  const std::vector<int32_t> ids = {6, 0, 3};
  std::vector<float> e_ref(3 * 256), e_cpu(3 * 256);
  EmbeddingRef({table.data(), DType::kQ4_K, 7, 256, ids.data(), 3, e_ref.data()});
  EmbeddingCpu({table.data(), DType::kQ4_K, 7, 256, ids.data(), 3, e_cpu.data()}, pool);
  EXPECT_EQ(e_ref, e_cpu);
}

// KV append over a paged pool: two chunks of one sequence, the second
// starting inside a logical page (statistics merged), tokens not stored
// (page -1), a pool holding a subset of the kv heads in another order, and
// statistics memory poisoned with NaN (it must be set, never read, at the
// first token of each logical page).
TEST(ConformanceKvAppend, PagedChunksAndStatistics) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (int64_t page_size : {16, 32, 64}) {
    for (int64_t head_dim : {16, 64}) {
      SCOPED_TRACE(testing::Message() << "page_size=" << page_size << " head_dim=" << head_dim);
      const int64_t n_kv = 4, logical = 16, num_pages = 24, tokens = 257;
      const std::vector<int32_t> pool_heads = {2, 0, 3};
      const int64_t slots = static_cast<int64_t>(pool_heads.size()), g = page_size / logical;
      std::vector<int32_t> page_of_block(num_pages);
      std::iota(page_of_block.begin(), page_of_block.end(), 0);
      std::shuffle(page_of_block.begin(), page_of_block.end(), rng);
      const std::vector<float> k = RandomFloats(rng, tokens * n_kv * head_dim);
      const std::vector<float> v = RandomFloats(rng, tokens * n_kv * head_dim);
      std::vector<int64_t> positions(tokens);
      std::iota(positions.begin(), positions.end(), 0);
      std::vector<int32_t> slot_page(tokens), slot_offset(tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        slot_page[t] = page_of_block[t / page_size];
        slot_offset[t] = static_cast<int32_t>(t % page_size);
      }
      slot_page[5] = -1;  // a token not stored (e.g. a padding row)
      const size_t cache_size = num_pages * slots * page_size * head_dim;
      const size_t stats_size = num_pages * slots * g * 2 * head_dim;
      std::vector<float> kc_ref(cache_size, NAN), vc_ref(cache_size, NAN), st_ref(stats_size, NAN);
      std::vector<float> kc_cpu = kc_ref, vc_cpu = vc_ref, st_cpu = st_ref;
      // Chunks [0, 40) and [40, 257): position 40 is inside logical page 2.
      for (auto [t0, t1] : {std::pair<int64_t, int64_t>{0, 40}, {40, tokens}}) {
        KvAppendParams p{k.data() + t0 * n_kv * head_dim, v.data() + t0 * n_kv * head_dim, t1 - t0, n_kv, head_dim,
                         pool_heads.data(), slots, kc_ref.data(), vc_ref.data(), page_size,
                         slot_page.data() + t0, slot_offset.data() + t0, st_ref.data(), logical,
                         positions.data() + t0};
        KvAppendRef(p);
        p.k_cache = kc_cpu.data();
        p.v_cache = vc_cpu.data();
        p.k_stats = st_cpu.data();
        KvAppendCpu(p, pool);
      }
      // Copies are exact, so bit equality (NaN slots compare as bytes).
      EXPECT_EQ(0, std::memcmp(kc_ref.data(), kc_cpu.data(), cache_size * 4));
      EXPECT_EQ(0, std::memcmp(vc_ref.data(), vc_cpu.data(), cache_size * 4));
      EXPECT_EQ(0, std::memcmp(st_ref.data(), st_cpu.data(), stats_size * 4));
      // Against the definition.
      for (int64_t t = 0; t < tokens; ++t) {
        if (slot_page[t] < 0) continue;
        for (int64_t s = 0; s < slots; ++s) {
          const float* src = k.data() + (t * n_kv + pool_heads[s]) * head_dim;
          const float* dst = kc_ref.data() + ((slot_page[t] * slots + s) * page_size + slot_offset[t]) * head_dim;
          ASSERT_EQ(0, std::memcmp(src, dst, head_dim * 4)) << "token " << t << " slot " << s;
        }
      }
      for (int64_t lp = 0; lp * logical < tokens; ++lp) {
        const int64_t first = lp * logical, last = std::min(tokens, first + logical);
        const int64_t page = page_of_block[first / page_size], sub = (first % page_size) / logical;
        for (int64_t s = 0; s < slots; ++s) {
          const float* st = st_ref.data() + (((page * slots + s) * g + sub) * 2) * head_dim;
          for (int64_t c = 0; c < head_dim; ++c) {
            float mx = -INFINITY, mn = INFINITY;
            for (int64_t t = first; t < last; ++t) {
              if (slot_page[t] < 0) continue;
              const float x = k[(t * n_kv + pool_heads[s]) * head_dim + c];
              mx = std::max(mx, x);
              mn = std::min(mn, x);
            }
            ASSERT_EQ(st[c], mx) << "logical page " << lp << " slot " << s << " channel " << c;
            ASSERT_EQ(st[head_dim + c], mn) << "logical page " << lp << " slot " << s << " channel " << c;
          }
        }
      }
    }
  }
}

TEST(ConformanceKvAppend, WithoutStatisticsAndEmptyPool) {
  ThreadPool pool(2);
  const int64_t d = 8;
  std::vector<float> k(3 * d, 1.0f), v(3 * d, 2.0f), kc(2 * 16 * d, 0.0f), vc(2 * 16 * d, 0.0f);
  const std::vector<int32_t> heads = {0}, page = {1, 1, 0}, offset = {0, 1, 15};
  const std::vector<int64_t> pos = {0, 1, 2};
  KvAppendParams p{k.data(), v.data(), 3, 1, d, heads.data(), 1, kc.data(), vc.data(), 16, page.data(), offset.data(),
                   nullptr, 16, pos.data()};
  KvAppendCpu(p, pool);
  EXPECT_EQ(kc[(1 * 16 + 0) * d], 1.0f);
  EXPECT_EQ(vc[(0 * 16 + 15) * d + d - 1], 2.0f);
  EXPECT_EQ(kc[(0 * 16 + 0) * d], 0.0f);
  p.n_pool_heads = 0;  // a pool with no heads (streaming pool in the dense engine)
  std::vector<float> before = kc;
  KvAppendCpu(p, pool);
  KvAppendRef(p);
  EXPECT_EQ(kc, before);
}

}  // namespace
}  // namespace lserve::conformance
