// Sparse attention (dense-causal / Λ-streaming heads, page selections, two
// pools, the streaming ring) against a masked dense oracle in f64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu/sparse_attention.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/sparse_attention.h"

namespace lserve::conformance {
namespace {

struct SeqSpec {
  int64_t kv_len;  // cached tokens of the sequence
  int64_t rows;    // query rows
  int64_t pos0;    // position of the first query row
};

struct SparseCase {
  int64_t page_size, group, head_dim;
  std::vector<int8_t> modes;  // per KV head
  int64_t sink, local;
  std::vector<SeqSpec> seqs;
  int64_t extra_ring_pages = 0;  // ring pages beyond the fewest the rows need
  bool select = false;           // random page selections for the retrieval heads
};

// A batch as the engine lays it out: retrieval pages of all sequences shuffled
// in one pool with a spare page per table; each sequence's streaming ring as
// small as its rows allow (so it wraps), holding only the pages a ring would
// still hold. Every cache slot without a held token is NaN.
struct SparseBatch {
  int64_t n_kv_heads, n_q_heads, d, ps;
  std::vector<std::vector<float>> true_k, true_v;  // [seq * n_kv_heads + kv_head][kv_len, d]
  std::vector<float> q, k_r, v_r, k_s, v_s;
  std::vector<int64_t> q_start, q_pos0, kv_len, start_r, start_s, n_selected;
  std::vector<int32_t> table_r, table_s, pool_slot, selected;
  std::vector<int8_t> modes;
  SparseAttentionParams params{};

  SparseBatch(const SparseCase& c, std::mt19937_64& rng) {
    n_kv_heads = static_cast<int64_t>(c.modes.size());
    n_q_heads = n_kv_heads * c.group;
    d = c.head_dim;
    ps = c.page_size;
    modes = c.modes;
    int64_t n_r = 0, n_s = 0;
    for (int8_t m : modes) pool_slot.push_back(static_cast<int32_t>(m == kHeadModeRetrieval ? n_r++ : n_s++));
    const int64_t sink_pages = (c.sink + ps - 1) / ps;
    // The fewest ring pages every sequence's rows need, plus the case's extra.
    int64_t ring = 1;
    for (const SeqSpec& s : c.seqs) {
      if (s.kv_len == 0) continue;
      const int64_t last = (s.kv_len - 1) / ps;
      const int64_t oldest_needed = std::max<int64_t>(0, s.pos0 - c.local + 1) / ps;
      ring = std::max(ring, last - oldest_needed + 1);
    }
    ring += c.extra_ring_pages;
    int64_t pages_r = 0;
    for (const SeqSpec& s : c.seqs) pages_r += (s.kv_len + ps - 1) / ps + 1;
    const int64_t pages_s = static_cast<int64_t>(c.seqs.size()) * (sink_pages + ring);
    std::vector<int32_t> ids_r(static_cast<size_t>(pages_r)), ids_s(static_cast<size_t>(pages_s));
    std::iota(ids_r.begin(), ids_r.end(), 0);
    std::iota(ids_s.begin(), ids_s.end(), 0);
    std::shuffle(ids_r.begin(), ids_r.end(), rng);
    std::shuffle(ids_s.begin(), ids_s.end(), rng);
    k_r.assign(static_cast<size_t>(pages_r * n_r * ps * d), NAN);
    v_r = k_r;
    k_s.assign(static_cast<size_t>(pages_s * n_s * ps * d), NAN);
    v_s = k_s;
    q_start.push_back(0);
    start_r.push_back(0);
    start_s.push_back(0);
    int64_t rows = 0, next_r = 0, next_s = 0, max_sel = 0;
    for (const SeqSpec& s : c.seqs) max_sel = std::max(max_sel, (s.kv_len + ps - 1) / ps + 1);
    for (size_t si = 0; si < c.seqs.size(); ++si) {
      const SeqSpec& s = c.seqs[si];
      const int64_t n_pages = (s.kv_len + ps - 1) / ps;
      for (int64_t i = 0; i <= n_pages; ++i) table_r.push_back(ids_r[next_r++]);
      for (int64_t i = 0; i < sink_pages + ring; ++i) table_s.push_back(ids_s[next_s++]);
      const int64_t last = s.kv_len > 0 ? (s.kv_len - 1) / ps : -1;
      for (int64_t h = 0; h < n_kv_heads; ++h) {
        true_k.push_back(RandomFloats(rng, s.kv_len * d));
        true_v.push_back(RandomFloats(rng, s.kv_len * d));
        const bool retrieval = modes[h] == kHeadModeRetrieval;
        for (int64_t j = 0; j < s.kv_len; ++j) {
          const int64_t b = j / ps;
          int64_t at;
          if (retrieval) {
            at = ((table_r[start_r.back() + b] * n_r + pool_slot[h]) * ps + j % ps) * d;
          } else {
            if (!(b < sink_pages || b > last - ring)) continue;  // overwritten in the ring
            const int64_t page = table_s[start_s.back() + RingSlotOf(b, sink_pages, ring)];
            at = ((page * n_s + pool_slot[h]) * ps + j % ps) * d;
          }
          std::vector<float>& kc = retrieval ? k_r : k_s;
          std::vector<float>& vc = retrieval ? v_r : v_s;
          std::copy_n(true_k.back().begin() + j * d, d, kc.begin() + at);
          std::copy_n(true_v.back().begin() + j * d, d, vc.begin() + at);
        }
        // A random ascending selection, sometimes with the spare page past the end.
        std::vector<int32_t> sel;
        for (int64_t b = 0; b <= n_pages; ++b) {
          if (std::uniform_int_distribution<int>(0, 2)(rng) != 0) sel.push_back(static_cast<int32_t>(b));
        }
        n_selected.push_back(static_cast<int64_t>(sel.size()));
        sel.resize(static_cast<size_t>(max_sel), -7);
        selected.insert(selected.end(), sel.begin(), sel.end());
      }
      rows += s.rows;
      q_start.push_back(rows);
      q_pos0.push_back(s.pos0);
      kv_len.push_back(s.kv_len);
      start_r.push_back(static_cast<int64_t>(table_r.size()));
      start_s.push_back(static_cast<int64_t>(table_s.size()));
    }
    q = RandomFloats(rng, rows * n_q_heads * d, -3.0f, 3.0f);
    SparseAttentionParams& p = params;
    p.q = q.data();
    p.n_q_heads = n_q_heads;
    p.n_kv_heads = n_kv_heads;
    p.head_dim = d;
    p.scale = 1.0f / std::sqrt(static_cast<float>(d));
    p.n_seqs = static_cast<int64_t>(c.seqs.size());
    p.q_start = q_start.data();
    p.q_pos0 = q_pos0.data();
    p.kv_len = kv_len.data();
    p.page_size = ps;
    p.head_mode = modes.data();
    p.pool_slot = pool_slot.data();
    p.page_table_r = table_r.data();
    p.page_table_start_r = start_r.data();
    p.k_cache_r = k_r.data();
    p.v_cache_r = v_r.data();
    p.n_retrieval_heads = n_r;
    if (c.select) {
      p.selected_pages = selected.data();
      p.n_selected = n_selected.data();
    }
    p.max_selected = max_sel;
    p.page_table_s = table_s.data();
    p.page_table_start_s = start_s.data();
    p.k_cache_s = k_s.data();
    p.v_cache_s = v_s.data();
    p.n_streaming_heads = n_s;
    p.stream_sink_pages = sink_pages;
    p.stream_ring_pages = ring;
    p.sink = c.sink;
    p.local = c.local;
  }
  int64_t rows() const { return q_start.back(); }

  // The masked dense oracle in f64 from the true keys and values.
  bool Visible(int64_t s, int64_t kv_head, int64_t pos, int64_t j) const {
    if (j > pos || j >= kv_len[s]) return false;
    if (modes[kv_head] == kHeadModeStreaming) return j < params.sink || j > pos - params.local;
    if (params.selected_pages == nullptr) return true;
    const int64_t list = s * n_kv_heads + kv_head;
    const int32_t* sel = params.selected_pages + list * params.max_selected;
    return std::find(sel, sel + params.n_selected[list], static_cast<int32_t>(j / ps)) != sel + params.n_selected[list];
  }
  void Oracle(std::vector<double>& out, std::vector<double>& lse) const {
    const int64_t group = n_q_heads / n_kv_heads;
    out.assign(static_cast<size_t>(rows() * n_q_heads * d), 0.0);
    lse.assign(static_cast<size_t>(rows() * n_q_heads), -INFINITY);
    for (int64_t s = 0; s < params.n_seqs; ++s) {
      for (int64_t row = q_start[s]; row < q_start[s + 1]; ++row) {
        const int64_t pos = q_pos0[s] + row - q_start[s];
        for (int64_t h = 0; h < n_q_heads; ++h) {
          const int64_t kvh = h / group;
          const std::vector<float>& tk = true_k[s * n_kv_heads + kvh];
          const std::vector<float>& tv = true_v[s * n_kv_heads + kvh];
          std::vector<std::pair<int64_t, double>> sc;
          double m = -INFINITY;
          for (int64_t j = 0; j < kv_len[s]; ++j) {
            if (!Visible(s, kvh, pos, j)) continue;
            double dot = 0.0;
            for (int64_t x = 0; x < d; ++x) dot += static_cast<double>(q[(row * n_q_heads + h) * d + x]) * tk[j * d + x];
            sc.push_back({j, dot * static_cast<double>(params.scale)});
            m = std::max(m, sc.back().second);
          }
          if (sc.empty()) continue;
          double sum = 0.0;
          for (const auto& [j, v] : sc) sum += std::exp(v - m);
          for (const auto& [j, v] : sc) {
            const double w = std::exp(v - m) / sum;
            for (int64_t x = 0; x < d; ++x) out[(row * n_q_heads + h) * d + x] += w * tv[j * d + x];
          }
          lse[row * n_q_heads + h] = m + std::log(sum);
        }
      }
    }
  }
};

double LseError(const std::vector<float>& lse, const std::vector<double>& oracle) {
  double worst = 0.0;
  for (size_t i = 0; i < lse.size(); ++i) {
    if (oracle[i] == -INFINITY) {
      if (lse[i] != -INFINITY) return NAN;
      continue;
    }
    const double e = std::fabs(lse[i] - oracle[i]);
    if (std::isnan(e)) return NAN;
    worst = std::max(worst, e);
  }
  return worst;
}

struct SparseRun {
  std::vector<float> out, lse;
  SparseAttentionCounters counters;
};

SparseRun RunRef(const SparseBatch& b) {
  SparseRun r;
  r.out.assign(static_cast<size_t>(b.rows() * b.n_q_heads * b.d), NAN);
  r.lse.assign(static_cast<size_t>(b.rows() * b.n_q_heads), NAN);
  SparseAttentionParams p = b.params;
  p.out = r.out.data();
  p.lse = r.lse.data();
  p.counters = &r.counters;
  SparseAttentionRef(p);
  return r;
}

SparseRun RunCpu(const SparseBatch& b, ThreadPool& pool) {
  SparseRun r;
  r.out.assign(static_cast<size_t>(b.rows() * b.n_q_heads * b.d), NAN);
  r.lse.assign(static_cast<size_t>(b.rows() * b.n_q_heads), NAN);
  SparseAttentionParams p = b.params;
  p.out = r.out.data();
  p.lse = r.lse.data();
  p.counters = &r.counters;
  SparseAttentionCpu(p, pool);
  return r;
}

// Ref and CPU against the oracle (practice 4), counters equal; returns the ref run.
SparseRun CheckCase(const SparseCase& c, ThreadPool& pool, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << "P=" << c.page_size << " group=" << c.group << " d=" << c.head_dim
                                  << " sink=" << c.sink << " local=" << c.local << " kv_len0=" << c.seqs[0].kv_len
                                  << " select=" << c.select);
  SparseBatch b(c, rng);
  std::vector<double> out_o, lse_o;
  b.Oracle(out_o, lse_o);
  SparseRun ref = RunRef(b);
  SparseRun cpu = RunCpu(b, pool);
  EXPECT_LE(MaxAbsDiff(ref.out, out_o), 1e-4);
  EXPECT_WITHIN_REFERENCE_ERROR(MaxAbsDiff(cpu.out, out_o), MaxAbsDiff(ref.out, out_o), 8 * kF32Eps);
  EXPECT_WITHIN_REFERENCE_ERROR(LseError(cpu.lse, lse_o), LseError(ref.lse, lse_o), 16 * kF32Eps);
  EXPECT_EQ(ref.counters.blocks_visited, cpu.counters.blocks_visited);
  EXPECT_EQ(ref.counters.blocks_dense, cpu.counters.blocks_dense);
  EXPECT_LE(ref.counters.blocks_visited, ref.counters.blocks_dense);
  return ref;
}

const std::vector<int64_t> kLengths = {1, 3, 17, 97, 129, 257};
const std::vector<std::pair<int64_t, int64_t>> kWindows = {{0, 1}, {4, 16}, {16, 32}, {5, 40}, {64, 64}, {1, 100}};

TEST(ConformanceSparseAttention, PrefillMixedModesAgainstMaskedOracle) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  int i = 0;
  for (int64_t len : kLengths) {
    for (int64_t ps : {16, 32, 64}) {
      const int64_t group = std::vector<int64_t>{1, 4, 8}[i % 3];
      const auto [sink, local] = kWindows[i % kWindows.size()];
      ++i;
      // A whole prompt; then the same length reached by a chunk at an offset
      // in one batch with a decode row (a ring that wraps).
      const std::vector<int8_t> modes = {kHeadModeStreaming, kHeadModeRetrieval, kHeadModeStreaming};
      CheckCase({ps, group, 32, modes, sink, local, {{len, len, 0}}}, pool, rng);
      const int64_t chunk = std::min<int64_t>(len, 20);
      CheckCase({ps, group, 32, modes, sink, local, {{len, chunk, len - chunk}, {len + 5, 1, len + 4}}}, pool, rng);
    }
  }
}

TEST(ConformanceSparseAttention, DecodeSelectionsAndStreamingAgainstMaskedOracle) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(4);  // few items: the page lists are split and merged
  for (int64_t ps : {16, 32, 64}) {
    for (int64_t group : {1, 4, 8}) {
      CheckCase({ps, group, 64, {kHeadModeRetrieval, kHeadModeStreaming}, 16, 48,
                 {{1, 1, 0}, {129, 1, 128}, {1000, 1, 999}, {ps * 9, 1, ps * 9 - 1}}, 0, true},
                pool, rng);
    }
  }
  // One long decode row: splits over a long page list.
  CheckCase({16, 4, 64, {kHeadModeRetrieval}, 0, 1, {{2000, 1, 1999}}, 0, false}, pool, rng);
  CheckCase({16, 4, 64, {kHeadModeStreaming}, 128, 1024, {{3000, 1, 2999}}, 0, false}, pool, rng);
}

TEST(ConformanceSparseAttention, ScalarPathsMatchOracle) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  ScalarKernelsScope scalar;
  CheckCase({16, 4, 24, {kHeadModeStreaming, kHeadModeRetrieval}, 5, 20, {{97, 97, 0}, {257, 1, 256}}, 0, true}, pool,
            rng);
}

// Copies a sparse batch's retrieval pool into dense-attention params (every head retrieval).
PagedAttentionParams DenseParamsOf(const SparseBatch& b) {
  PagedAttentionParams p{};
  p.q = b.params.q;
  p.n_q_heads = b.n_q_heads;
  p.n_kv_heads = b.n_kv_heads;
  p.head_dim = b.d;
  p.scale = b.params.scale;
  p.n_seqs = b.params.n_seqs;
  p.q_start = b.params.q_start;
  p.q_pos0 = b.params.q_pos0;
  p.kv_len = b.params.kv_len;
  p.page_table = b.params.page_table_r;
  p.page_table_start = b.params.page_table_start_r;
  p.k_cache = b.params.k_cache_r;
  p.v_cache = b.params.v_cache_r;
  p.page_size = b.ps;
  return p;
}

std::vector<float> DenseRefOut(const PagedAttentionParams& dense, std::vector<float>* lse) {
  std::vector<float> out(static_cast<size_t>(dense.q_start[dense.n_seqs] * dense.n_q_heads * dense.head_dim), NAN);
  lse->assign(static_cast<size_t>(dense.q_start[dense.n_seqs] * dense.n_q_heads), NAN);
  PagedAttentionParams p = dense;
  p.out = out.data();
  p.lse = lse->data();
  PagedAttentionRef(p);
  return out;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// DESIGN.md exactness rules: all heads retrieval (no selection, or a selection
// of every page) give the dense reference's bits.
TEST(ConformanceSparseAttention, AllRetrievalIsBitIdenticalToDense) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t ps : {16, 64}) {
    SparseCase c{ps, 4, 32, {kHeadModeRetrieval, kHeadModeRetrieval}, 0, 1,
                 {{97, 97, 0}, {257, 1, 256}, {129, 30, 99}, {1, 1, 0}}};
    SparseBatch b(c, rng);
    std::vector<float> dense_lse;
    const std::vector<float> dense = DenseRefOut(DenseParamsOf(b), &dense_lse);
    SparseRun r = RunRef(b);
    EXPECT_TRUE(BitEqual(r.out, dense));
    EXPECT_TRUE(BitEqual(r.lse, dense_lse));
    EXPECT_EQ(r.counters.blocks_visited, r.counters.blocks_dense);
    // A selection of every page (and a page past the end).
    for (size_t list = 0; list < b.n_selected.size(); ++list) {
      const int64_t s = static_cast<int64_t>(list) / b.n_kv_heads;
      const int64_t n_pages = (b.kv_len[s] + ps - 1) / ps;
      for (int64_t i = 0; i <= n_pages; ++i) b.selected[list * b.params.max_selected + i] = static_cast<int32_t>(i);
      b.n_selected[list] = n_pages + 1;
    }
    b.params.selected_pages = b.selected.data();
    b.params.n_selected = b.n_selected.data();
    SparseRun all = RunRef(b);
    EXPECT_TRUE(BitEqual(all.out, dense));
    EXPECT_TRUE(BitEqual(all.lse, dense_lse));
  }
}

// Streaming heads with sink + local >= the length see every causal key: the
// dense reference's bits (read through a ring wide enough not to wrap, whose
// table is then the dense page order).
TEST(ConformanceSparseAttention, StreamingWithWideWindowIsBitIdenticalToDense) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (const auto& [sink, local] : std::vector<std::pair<int64_t, int64_t>>{{0, 257}, {100, 157}, {257, 1}, {3, 300}}) {
    SparseCase c{32, 4, 32, {kHeadModeStreaming, kHeadModeStreaming}, sink, local,
                 {{257, 257, 0}, {129, 1, 128}, {17, 5, 12}}, 16};
    SparseBatch b(c, rng);
    PagedAttentionParams dense = DenseParamsOf(b);
    // The ring never wrapped: logical page b sits at table slot b.
    dense.page_table = b.params.page_table_s;
    dense.page_table_start = b.params.page_table_start_s;
    dense.k_cache = b.params.k_cache_s;
    dense.v_cache = b.params.v_cache_s;
    std::vector<float> dense_lse;
    const std::vector<float> expect = DenseRefOut(dense, &dense_lse);
    SparseRun r = RunRef(b);
    EXPECT_TRUE(BitEqual(r.out, expect)) << "sink " << sink << " local " << local;
    EXPECT_TRUE(BitEqual(r.lse, dense_lse));
    EXPECT_EQ(r.counters.blocks_visited, r.counters.blocks_dense);
    SparseRun cpu = RunCpu(b, pool);
    EXPECT_LE(MaxAbsDiff(cpu.out, std::vector<double>(expect.begin(), expect.end())), 1e-5);
  }
}

// Skipped pages cost nothing: a long prefill of streaming heads visits about
// (sink + local) / P pages per row, the dense count grows with the length.
TEST(ConformanceSparseAttention, StreamingVisitsOnlySinkAndLocalPages) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  SparseRun r = CheckCase({16, 1, 16, {kHeadModeStreaming}, 16, 32, {{1024, 1024, 0}}}, pool, rng);
  EXPECT_LE(r.counters.blocks_visited, 1024 * 4);  // 1 sink page + at most 3 local pages per row
  EXPECT_EQ(r.counters.blocks_dense, 16 * (64 * 65 / 2));
}

// With zero selected pages a retrieval row is the empty state.
TEST(ConformanceSparseAttention, EmptySelectionGivesEmptyState) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  SparseBatch b({16, 2, 16, {kHeadModeRetrieval}, 0, 1, {{40, 1, 39}}, 0, true}, rng);
  b.n_selected[0] = 0;
  for (const SparseRun& r : {RunRef(b), RunCpu(b, pool)}) {
    for (float x : r.out) EXPECT_EQ(x, 0.0f);
    for (float x : r.lse) EXPECT_EQ(x, -INFINITY);
    EXPECT_EQ(r.counters.blocks_visited, 0);
  }
}

}  // namespace
}  // namespace lserve::conformance
