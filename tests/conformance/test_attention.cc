// Paged attention (dense causal, GQA, ragged batch) and the log-sum-exp merge.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/merge.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/merge.h"

namespace lserve::conformance {
namespace {

struct SeqSpec {
  int64_t kv_len;  // cached tokens visible to the sequence
  int64_t rows;    // query rows
  int64_t pos0;    // position of the first query row
};

struct AttentionCase {
  int64_t page_size, n_kv_heads, group, head_dim;
  std::vector<SeqSpec> seqs;
};

// A batch laid out as the engine would: pages of all sequences shuffled in
// one pool, one spare page per sequence in its table, and every cache slot
// that holds no visible token poisoned with NaN (a kernel that reads past
// kv_len or outside the table produces NaN).
struct AttentionBatch {
  std::vector<float> q, k_cache, v_cache;
  std::vector<int64_t> q_start, q_pos0, kv_len, page_table_start;
  std::vector<int32_t> page_table;
  PagedAttentionParams params{};

  AttentionBatch(const AttentionCase& c, std::mt19937_64& rng) {
    const int64_t n_q_heads = c.n_kv_heads * c.group;
    const int64_t d = c.head_dim, ps = c.page_size;
    int64_t total_pages = 0;
    for (const SeqSpec& s : c.seqs) total_pages += (s.kv_len + ps - 1) / ps + 1;
    std::vector<int32_t> ids(static_cast<size_t>(total_pages));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    k_cache.assign(static_cast<size_t>(total_pages * c.n_kv_heads * ps * d), NAN);
    v_cache = k_cache;
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    int64_t next_page = 0, rows = 0;
    q_start.push_back(0);
    page_table_start.push_back(0);
    for (const SeqSpec& s : c.seqs) {
      const int64_t pages = (s.kv_len + ps - 1) / ps + 1;
      for (int64_t i = 0; i < pages; ++i) page_table.push_back(ids[next_page++]);
      for (int64_t j = 0; j < s.kv_len; ++j) {
        const int64_t page = page_table[page_table_start.back() + j / ps];
        for (int64_t h = 0; h < c.n_kv_heads; ++h) {
          const int64_t at = ((page * c.n_kv_heads + h) * ps + j % ps) * d;
          for (int64_t x = 0; x < d; ++x) {
            k_cache[at + x] = unit(rng);
            v_cache[at + x] = unit(rng);
          }
        }
      }
      rows += s.rows;
      q_start.push_back(rows);
      q_pos0.push_back(s.pos0);
      kv_len.push_back(s.kv_len);
      page_table_start.push_back(static_cast<int64_t>(page_table.size()));
    }
    // Scores of a few units: softmax weights far from uniform.
    q = RandomFloats(rng, rows * n_q_heads * d, -3.0f, 3.0f);
    params.q = q.data();
    params.n_q_heads = n_q_heads;
    params.n_kv_heads = c.n_kv_heads;
    params.head_dim = d;
    params.scale = 1.0f / std::sqrt(static_cast<float>(d));
    params.n_seqs = static_cast<int64_t>(c.seqs.size());
    params.q_start = q_start.data();
    params.q_pos0 = q_pos0.data();
    params.kv_len = kv_len.data();
    params.page_table = page_table.data();
    params.page_table_start = page_table_start.data();
    params.k_cache = k_cache.data();
    params.v_cache = v_cache.data();
    params.page_size = ps;
    params.pool_head_of_kv_head = 0;
  }
  int64_t rows() const { return q_start.back(); }
};

// f64 oracle; lse is -inf for a row that sees no key.
void AttentionOracle(const PagedAttentionParams& p, std::vector<double>& out, std::vector<double>& lse) {
  const int64_t d = p.head_dim, group = p.n_q_heads / p.n_kv_heads;
  const int64_t rows = p.q_start[p.n_seqs];
  out.assign(static_cast<size_t>(rows * p.n_q_heads * d), 0.0);
  lse.assign(static_cast<size_t>(rows * p.n_q_heads), -INFINITY);
  std::vector<double> s;
  for (int64_t q_seq = 0; q_seq < p.n_seqs; ++q_seq) {
    const int32_t* pages = p.page_table + p.page_table_start[q_seq];
    for (int64_t row = p.q_start[q_seq]; row < p.q_start[q_seq + 1]; ++row) {
      const int64_t pos = p.q_pos0[q_seq] + row - p.q_start[q_seq];
      const int64_t visible = std::min(pos + 1, p.kv_len[q_seq]);
      if (visible <= 0) continue;
      for (int64_t h = 0; h < p.n_q_heads; ++h) {
        const float* q = p.q + (row * p.n_q_heads + h) * d;
        s.assign(static_cast<size_t>(visible), 0.0);
        double m = -INFINITY;
        auto at = [&](int64_t j) { return ((pages[j / p.page_size] * p.n_kv_heads + h / group) * p.page_size + j % p.page_size) * d; };
        for (int64_t j = 0; j < visible; ++j) {
          double dot = 0.0;
          for (int64_t x = 0; x < d; ++x) dot += static_cast<double>(q[x]) * p.k_cache[at(j) + x];
          s[j] = dot * static_cast<double>(p.scale);
          m = std::max(m, s[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < visible; ++j) sum += std::exp(s[j] - m);
        for (int64_t j = 0; j < visible; ++j) {
          const double w = std::exp(s[j] - m) / sum;
          for (int64_t x = 0; x < d; ++x) out[(row * p.n_q_heads + h) * d + x] += w * p.v_cache[at(j) + x];
        }
        lse[row * p.n_q_heads + h] = m + std::log(sum);
      }
    }
  }
}

// |lse - oracle| over rows that see keys; the empty rows must be exactly -inf.
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

void RunAttentionCase(const AttentionCase& c, ThreadPool& pool, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << "page_size=" << c.page_size << " kv_heads=" << c.n_kv_heads << " group="
                                  << c.group << " head_dim=" << c.head_dim << " seqs=" << c.seqs.size());
  AttentionBatch batch(c, rng);
  const int64_t n = batch.rows() * batch.params.n_q_heads;
  std::vector<float> out_ref(n * c.head_dim), out_cpu(n * c.head_dim), lse_ref(n), lse_cpu(n);
  Poison(out_ref);
  Poison(out_cpu);
  Poison(lse_ref);
  Poison(lse_cpu);
  PagedAttentionParams p = batch.params;
  p.out = out_ref.data();
  p.lse = lse_ref.data();
  PagedAttentionRef(p);
  p.out = out_cpu.data();
  p.lse = lse_cpu.data();
  PagedAttentionCpu(p, pool);
  std::vector<double> out_oracle, lse_oracle;
  AttentionOracle(p, out_oracle, lse_oracle);
  // Values are in [-1, 1], so absolute errors are relative to the value scale.
  EXPECT_WITHIN_REFERENCE_ERROR(MaxAbsDiff(out_cpu, out_oracle), MaxAbsDiff(out_ref, out_oracle), 8 * kF32Eps);
  EXPECT_WITHIN_REFERENCE_ERROR(LseError(lse_cpu, lse_oracle), LseError(lse_ref, lse_oracle), 16 * kF32Eps);

  // Without lse the outputs are the same.
  std::vector<float> out_no_lse(n * c.head_dim);
  Poison(out_no_lse);
  p.out = out_no_lse.data();
  p.lse = nullptr;
  PagedAttentionCpu(p, pool);
  EXPECT_EQ(MaxAbsDiff(out_no_lse, std::vector<double>(out_cpu.begin(), out_cpu.end())), 0.0);
}

// A mixed step: decode rows, a prefill from 0, chunks at an offset, a
// sequence with no cached token, rows beyond the cached length.
std::vector<SeqSpec> MixedBatch() {
  return {{1, 1, 0}, {17, 17, 0}, {97, 3, 94}, {129, 1, 128}, {257, 97, 160}, {0, 1, 0}, {3, 2, 5}};
}

TEST(ConformanceAttention, PageSizesAndGqaGroups) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (int64_t ps : {16, 32, 64}) {
    for (int64_t group : {1, 4, 8}) RunAttentionCase({ps, 2, group, 64, MixedBatch()}, pool, rng);
  }
}

TEST(ConformanceAttention, HeadDims) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(3);
  const std::vector<SeqSpec> seqs = {{1, 1, 0}, {17, 17, 0}, {129, 3, 126}, {0, 2, 0}};
  for (int64_t d : {16, 128, 24}) {  // 24: no specialised path
    RunAttentionCase({16, 1, 4, d, seqs}, pool, rng);
    RunAttentionCase({32, 3, 3, d, seqs}, pool, rng);
  }
}

// Few long decode rows: the CPU kernel splits the keys and merges the parts.
TEST(ConformanceAttention, SplitKeysForLongDecode) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  RunAttentionCase({16, 1, 4, 64, {{1000, 1, 999}, {600, 1, 599}}}, pool, rng);
  RunAttentionCase({64, 1, 8, 64, {{700, 2, 698}}}, pool, rng);
  RunAttentionCase({32, 2, 1, 128, {{513, 1, 512}}}, pool, rng);
}

TEST(ConformanceAttention, ScalarFallback) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  ScalarKernelsScope scalar;
  RunAttentionCase({16, 2, 4, 64, MixedBatch()}, pool, rng);
  RunAttentionCase({16, 1, 4, 16, {{700, 1, 699}}}, pool, rng);  // split keys too
}

// ---- log-sum-exp merge ----

void MergeOracle(const std::vector<float>& va, const std::vector<float>& la, const std::vector<float>& vb,
                 const std::vector<float>& lb, int64_t d, std::vector<double>& v, std::vector<double>& l) {
  const int64_t n = static_cast<int64_t>(la.size());
  v.assign(static_cast<size_t>(n * d), 0.0);
  l.assign(static_cast<size_t>(n), -INFINITY);
  for (int64_t r = 0; r < n; ++r) {
    const double a = la[r], b = lb[r];
    if (a == -INFINITY && b == -INFINITY) continue;
    const double m = std::max(a, b);
    const double wa = a == -INFINITY ? 0.0 : std::exp(a - m), wb = b == -INFINITY ? 0.0 : std::exp(b - m);
    for (int64_t x = 0; x < d; ++x) {
      const double xa = wa == 0.0 ? 0.0 : va[r * d + x], xb = wb == 0.0 ? 0.0 : vb[r * d + x];
      v[r * d + x] = (wa * xa + wb * xb) / (wa + wb);
    }
    l[r] = m + std::log(wa + wb);
  }
}

TEST(ConformanceMerge, RandomStatesAgainstOracle) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  for (int64_t n : {1, 3, 17, 257}) {
    for (int64_t d : {16, 64, 128}) {
      const std::vector<float> va = RandomFloats(rng, n * d), vb = RandomFloats(rng, n * d);
      std::vector<float> la = RandomFloats(rng, n, -20.0f, 20.0f), lb = RandomFloats(rng, n, -20.0f, 20.0f);
      // Some rows empty on one side or both.
      for (int64_t r = 0; r < n; r += 3) la[r] = -INFINITY;
      for (int64_t r = 0; r < n; r += 5) lb[r] = -INFINITY;
      std::vector<double> v_oracle, l_oracle;
      MergeOracle(va, la, vb, lb, d, v_oracle, l_oracle);
      std::vector<float> v_ref(n * d), l_ref(n), v_cpu(n * d), l_cpu(n);
      Poison(v_ref);
      Poison(l_ref);
      Poison(v_cpu);
      Poison(l_cpu);
      MergeStatesParams p{va.data(), la.data(), vb.data(), lb.data(), v_ref.data(), l_ref.data(), n, d};
      MergeStatesRef(p);
      p.v_out = v_cpu.data();
      p.lse_out = l_cpu.data();
      MergeStatesCpu(p, pool);
      EXPECT_LE(MaxAbsDiff(v_ref, v_oracle), 4 * kF32Eps);
      EXPECT_LE(LseError(l_ref, l_oracle), 64 * kF32Eps);
      EXPECT_EQ(MaxAbsDiff(v_cpu, std::vector<double>(v_ref.begin(), v_ref.end())), 0.0);
      EXPECT_EQ(LseError(l_cpu, std::vector<double>(l_ref.begin(), l_ref.end())), 0.0);
    }
  }
}

TEST(ConformanceMerge, EmptyStates) {
  const int64_t d = 4;
  const float nan = NAN;
  // An empty state's values are never read: they are NaN here.
  const std::vector<float> empty_v = {nan, nan, nan, nan}, full_v = {0.5f, -1.0f, 2.0f, 0.25f};
  const std::vector<float> empty_l = {-INFINITY}, full_l = {1.5f};
  auto merge = [&](const std::vector<float>& va, const std::vector<float>& la, const std::vector<float>& vb,
                   const std::vector<float>& lb, std::vector<float>& v, float& l) {
    v.assign(d, 7.0f);
    MergeStatesParams p{va.data(), la.data(), vb.data(), lb.data(), v.data(), &l, 1, d};
    MergeStatesRef(p);
  };
  std::vector<float> v;
  float l = 0.0f;
  merge(empty_v, empty_l, empty_v, empty_l, v, l);
  EXPECT_EQ(l, -INFINITY);
  EXPECT_EQ(v, std::vector<float>(d, 0.0f));
  merge(full_v, full_l, empty_v, empty_l, v, l);
  EXPECT_EQ(l, 1.5f);
  EXPECT_EQ(v, full_v);  // bit-exact
  merge(empty_v, empty_l, full_v, full_l, v, l);
  EXPECT_EQ(l, 1.5f);
  EXPECT_EQ(v, full_v);

  // In place: (v, lse) merged with an empty state is unchanged; an empty
  // (v, lse) takes the other state.
  std::vector<float> acc = full_v;
  float acc_l = 1.5f;
  MergeStateInPlace(acc.data(), &acc_l, empty_v.data(), -INFINITY, d);
  EXPECT_EQ(acc, full_v);
  EXPECT_EQ(acc_l, 1.5f);
  acc = empty_v;
  acc_l = -INFINITY;
  MergeStateInPlace(acc.data(), &acc_l, full_v.data(), 1.5f, d);
  EXPECT_EQ(acc, full_v);
  EXPECT_EQ(acc_l, 1.5f);
  acc = empty_v;
  acc_l = -INFINITY;
  MergeStateInPlace(acc.data(), &acc_l, empty_v.data(), -INFINITY, d);
  EXPECT_EQ(acc, std::vector<float>(d, 0.0f));
  EXPECT_EQ(acc_l, -INFINITY);
}

TEST(ConformanceMerge, AliasedOutputs) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 17, d = 16;
  const std::vector<float> va = RandomFloats(rng, n * d), vb = RandomFloats(rng, n * d);
  const std::vector<float> la = RandomFloats(rng, n, -5, 5), lb = RandomFloats(rng, n, -5, 5);
  std::vector<float> v_sep(n * d), l_sep(n);
  MergeStatesParams p{va.data(), la.data(), vb.data(), lb.data(), v_sep.data(), l_sep.data(), n, d};
  MergeStatesRef(p);
  std::vector<float> a = va, al = la;
  MergeStatesRef({a.data(), al.data(), vb.data(), lb.data(), a.data(), al.data(), n, d});
  EXPECT_EQ(a, v_sep);
  EXPECT_EQ(al, l_sep);
  std::vector<float> b = vb, bl = lb;
  MergeStatesRef({va.data(), la.data(), b.data(), bl.data(), b.data(), bl.data(), n, d});
  EXPECT_EQ(b, v_sep);
  EXPECT_EQ(bl, l_sep);
}

// Attention over all keys equals the merge of attention over two key halves
// (computed by the oracle from the reference's partial states).
TEST(ConformanceMerge, MergingKeyHalvesGivesFullAttention) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  AttentionBatch batch({16, 1, 2, 16, {{40, 1, 39}}}, rng);
  PagedAttentionParams p = batch.params;
  const int64_t n = p.n_q_heads, d = p.head_dim;
  std::vector<float> full(n * d), full_l(n), first(n * d), first_l(n), second(n * d), second_l(n);
  p.out = full.data();
  p.lse = full_l.data();
  PagedAttentionRef(p);
  // First half: the query at position 39 sees keys 0..15 when kv_len = 16.
  std::vector<int64_t> kv16 = {16};
  p.kv_len = kv16.data();
  p.out = first.data();
  p.lse = first_l.data();
  PagedAttentionRef(p);
  // Second half: keys 16..39 are pages 1.. of the table; the query is put at a
  // position that sees all 24 of them.
  std::vector<int32_t> tail(batch.page_table.begin() + 1, batch.page_table.end());
  std::vector<int64_t> tail_start = {0, static_cast<int64_t>(tail.size())}, kv24 = {24}, pos23 = {23};
  p.page_table = tail.data();
  p.page_table_start = tail_start.data();
  p.kv_len = kv24.data();
  p.q_pos0 = pos23.data();
  p.out = second.data();
  p.lse = second_l.data();
  PagedAttentionRef(p);
  std::vector<float> merged(n * d), merged_l(n);
  MergeStatesRef({first.data(), first_l.data(), second.data(), second_l.data(), merged.data(), merged_l.data(), n, d});
  for (int64_t i = 0; i < n * d; ++i) EXPECT_NEAR(merged[i], full[i], 1e-6);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(merged_l[i], full_l[i], 1e-5);
}

}  // namespace
}  // namespace lserve::conformance
