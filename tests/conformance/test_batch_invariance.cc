// Batch invariance of the CPU attention kernels (RELIABILITY.md 36): the
// output and lse bits of a sequence's rows are the same whether the sequence
// is alone in the call or batched with 1-7 others (prefill chunks and decode
// rows mixed, in any order), whatever the thread count, and however its rows
// are cut into chunks. Compared byte for byte, for PagedAttentionCpu and
// SparseAttentionCpu (retrieval heads with and without page selections,
// streaming heads with per-sequence windows and wrapping rings).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/sparse_attention.h"

namespace lserve::conformance {
namespace {

struct WorldSpec {
  int64_t page_size, group, head_dim;
  std::vector<int8_t> modes;  // per KV head
  int64_t sink;                        // both windows
  int64_t prefill_local, decode_local;
};

// A sequence of the world: rows [0, rows) at positions pos0 .. pos0 + rows - 1
// over kv_len = pos0 + rows cached keys (its own chunk appended).
struct Sequence {
  bool decode;
  int64_t kv_len, pos0, rows, local, ring;
  std::vector<float> q;  // [rows, n_q_heads, d]
  std::vector<int32_t> table_d, table_r, table_s;
  std::vector<std::vector<int32_t>> selection;  // per KV head: ascending page indices
  std::vector<int64_t> n_selected;              // per KV head: -1 = no selection
};

// Rows [row_begin, row_end) of sequence `seq` as one sequence of a call.
struct View {
  int64_t seq, row_begin, row_end;
};

// Result bits of one view.
struct ViewBits {
  std::vector<uint32_t> out, lse;
};

std::vector<uint32_t> BitsOf(const float* x, int64_t n) {
  std::vector<uint32_t> bits(static_cast<size_t>(n));
  std::memcpy(bits.data(), x, static_cast<size_t>(n) * sizeof(float));
  return bits;
}

// Sequences whose keys and values live in three paged pools at shuffled
// physical pages: a dense pool (every KV head), the retrieval pool and the
// streaming pool (rings as small as the rows allow, so they wrap). Every
// slot that holds no token is NaN.
class World {
 public:
  World(const WorldSpec& spec, int n_seqs, std::mt19937_64& rng) : spec_(spec) {
    ps_ = spec.page_size;
    d_ = spec.head_dim;
    n_kv_ = static_cast<int64_t>(spec.modes.size());
    n_q_ = n_kv_ * spec.group;
    for (int8_t m : spec.modes) slot_.push_back(static_cast<int32_t>(m == kHeadModeRetrieval ? n_r_++ : n_s_++));
    sink_pages_ = (spec.sink + ps_ - 1) / ps_;
    std::uniform_int_distribution<int> coin(0, 1);
    // Long decode rows (several key parts), short ones, prefill chunks at an
    // offset and from 0.
    const std::vector<int64_t> decode_lens = {1, 17, 700, 1100, 1900, 2600};
    for (int i = 0; i < n_seqs; ++i) {
      Sequence s;
      s.decode = i % 2 == 0 ? true : coin(rng) == 0;
      if (s.decode) {
        s.rows = 1;
        s.kv_len = decode_lens[std::uniform_int_distribution<size_t>(0, decode_lens.size() - 1)(rng)] +
                   std::uniform_int_distribution<int64_t>(0, 40)(rng);
      } else {
        s.rows = std::uniform_int_distribution<int64_t>(1, 45)(rng);
        s.kv_len = s.rows + (coin(rng) ? 0 : std::uniform_int_distribution<int64_t>(1, 2000)(rng));
      }
      s.pos0 = s.kv_len - s.rows;
      s.local = s.decode ? spec.decode_local : spec.prefill_local;
      const int64_t last = (s.kv_len - 1) / ps_;
      s.ring = std::max<int64_t>(1, last - std::max<int64_t>(0, s.pos0 - s.local + 1) / ps_ + 1) + coin(rng);
      seqs_.push_back(std::move(s));
    }
    int64_t pages_d = 0, pages_s = 0;
    for (const Sequence& s : seqs_) {
      pages_d += (s.kv_len + ps_ - 1) / ps_ + 1;
      pages_s += sink_pages_ + s.ring;
    }
    std::vector<int32_t> ids_d(static_cast<size_t>(pages_d)), ids_r(ids_d.size()), ids_s(static_cast<size_t>(pages_s));
    std::iota(ids_d.begin(), ids_d.end(), 0);
    std::iota(ids_r.begin(), ids_r.end(), 0);
    std::iota(ids_s.begin(), ids_s.end(), 0);
    std::shuffle(ids_d.begin(), ids_d.end(), rng);
    std::shuffle(ids_r.begin(), ids_r.end(), rng);
    std::shuffle(ids_s.begin(), ids_s.end(), rng);
    const int64_t page_elems = ps_ * d_;
    k_d_.assign(static_cast<size_t>(pages_d * n_kv_ * page_elems), NAN);
    v_d_ = k_d_;
    k_r_.assign(static_cast<size_t>(pages_d * n_r_ * page_elems), NAN);
    v_r_ = k_r_;
    k_s_.assign(static_cast<size_t>(pages_s * n_s_ * page_elems), NAN);
    v_s_ = k_s_;
    int64_t next_d = 0, next_s = 0;
    for (Sequence& s : seqs_) {
      const int64_t n_pages = (s.kv_len + ps_ - 1) / ps_;
      const int64_t last = n_pages - 1;
      for (int64_t i = 0; i <= n_pages; ++i) {
        s.table_d.push_back(ids_d[next_d]);
        s.table_r.push_back(ids_r[next_d++]);
      }
      for (int64_t i = 0; i < sink_pages_ + s.ring; ++i) s.table_s.push_back(ids_s[next_s++]);
      for (int64_t h = 0; h < n_kv_; ++h) {
        const bool retrieval = spec.modes[h] == kHeadModeRetrieval;
        for (int64_t j = 0; j < s.kv_len; ++j) {
          const std::vector<float> k = RandomFloats(rng, d_), v = RandomFloats(rng, d_);
          const int64_t b = j / ps_, off = (j % ps_) * d_;
          auto put = [&](std::vector<float>& kc, std::vector<float>& vc, int64_t page, int64_t heads, int64_t slot) {
            const int64_t at = (page * heads + slot) * page_elems + off;
            std::copy(k.begin(), k.end(), kc.begin() + at);
            std::copy(v.begin(), v.end(), vc.begin() + at);
          };
          put(k_d_, v_d_, s.table_d[b], n_kv_, h);
          if (retrieval) {
            put(k_r_, v_r_, s.table_r[b], n_r_, slot_[h]);
          } else if (b < sink_pages_ || b > last - s.ring) {  // still held by the ring
            put(k_s_, v_s_, s.table_s[RingSlotOf(b, sink_pages_, s.ring)], n_s_, slot_[h]);
          }
        }
        // No selection (a third of the lists), or a random ascending one,
        // sometimes with the spare page past the end.
        std::vector<int32_t> sel;
        const bool select = std::uniform_int_distribution<int>(0, 2)(rng) != 0;
        for (int64_t b = 0; select && b <= n_pages; ++b) {
          if (std::uniform_int_distribution<int>(0, 3)(rng) != 0) sel.push_back(static_cast<int32_t>(b));
        }
        s.n_selected.push_back(select ? static_cast<int64_t>(sel.size()) : -1);
        s.selection.push_back(std::move(sel));
      }
      s.q = RandomFloats(rng, s.rows * n_q_ * d_, -3.0f, 3.0f);
    }
  }

  int64_t size() const { return static_cast<int64_t>(seqs_.size()); }
  const Sequence& seq(int64_t i) const { return seqs_[static_cast<size_t>(i)]; }

  // One call of PagedAttentionCpu (dense) or SparseAttentionCpu over `views`.
  std::vector<ViewBits> Run(const std::vector<View>& views, bool sparse, ThreadPool& pool) const {
    Call c;
    c.q_start.push_back(0);
    c.start_d.push_back(0);
    c.start_r.push_back(0);
    c.start_s.push_back(0);
    int64_t max_selected = 1;
    for (const View& v : views) {
      for (int64_t n : seq(v.seq).n_selected) max_selected = std::max(max_selected, n);
    }
    for (const View& v : views) {
      const Sequence& s = seq(v.seq);
      c.q.insert(c.q.end(), s.q.begin() + v.row_begin * n_q_ * d_, s.q.begin() + v.row_end * n_q_ * d_);
      c.q_start.push_back(c.q_start.back() + v.row_end - v.row_begin);
      c.q_pos0.push_back(s.pos0 + v.row_begin);
      c.kv_len.push_back(s.kv_len);
      c.table_d.insert(c.table_d.end(), s.table_d.begin(), s.table_d.end());
      c.table_r.insert(c.table_r.end(), s.table_r.begin(), s.table_r.end());
      c.table_s.insert(c.table_s.end(), s.table_s.begin(), s.table_s.end());
      c.start_d.push_back(static_cast<int64_t>(c.table_d.size()));
      c.start_r.push_back(static_cast<int64_t>(c.table_r.size()));
      c.start_s.push_back(static_cast<int64_t>(c.table_s.size()));
      for (int64_t h = 0; h < n_kv_; ++h) {
        std::vector<int32_t> sel = s.selection[h];
        sel.resize(static_cast<size_t>(max_selected), -1);
        c.selected.insert(c.selected.end(), sel.begin(), sel.end());
        c.n_selected.push_back(s.n_selected[h]);
      }
      c.sink.push_back(spec_.sink);
      c.local.push_back(s.local);
      c.ring.push_back(s.ring);
    }
    const int64_t rows = c.q_start.back();
    std::vector<float> out(static_cast<size_t>(rows * n_q_ * d_), NAN), lse(static_cast<size_t>(rows * n_q_), NAN);
    const int64_t n_seqs = static_cast<int64_t>(views.size());
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_));
    if (sparse) {
      SparseAttentionParams p{};
      p.q = c.q.data();
      p.out = out.data();
      p.lse = lse.data();
      p.n_q_heads = n_q_;
      p.n_kv_heads = n_kv_;
      p.head_dim = d_;
      p.scale = scale;
      p.n_seqs = n_seqs;
      p.q_start = c.q_start.data();
      p.q_pos0 = c.q_pos0.data();
      p.kv_len = c.kv_len.data();
      p.page_size = ps_;
      p.head_mode = spec_.modes.data();
      p.pool_slot = slot_.data();
      p.page_table_r = c.table_r.data();
      p.page_table_start_r = c.start_r.data();
      p.k_cache_r = k_r_.data();
      p.v_cache_r = v_r_.data();
      p.n_retrieval_heads = n_r_;
      p.selected_pages = c.selected.data();
      p.n_selected = c.n_selected.data();
      p.max_selected = max_selected;
      p.page_table_s = c.table_s.data();
      p.page_table_start_s = c.start_s.data();
      p.k_cache_s = k_s_.data();
      p.v_cache_s = v_s_.data();
      p.n_streaming_heads = n_s_;
      p.stream_sink_pages = sink_pages_;
      p.stream_ring_pages = 1;
      p.sink = spec_.sink;
      p.local = 1;
      p.seq_sink = c.sink.data();
      p.seq_local = c.local.data();
      p.seq_ring_pages = c.ring.data();
      SparseAttentionCpu(p, pool);
    } else {
      const PagedAttentionParams p{c.q.data(),      out.data(),       lse.data(),     n_q_,      n_kv_,
                                   d_,              scale,            n_seqs,         c.q_start.data(),
                                   c.q_pos0.data(), c.kv_len.data(), c.table_d.data(), c.start_d.data(),
                                   k_d_.data(),     v_d_.data(),      ps_,            0};
      PagedAttentionCpu(p, pool);
    }
    std::vector<ViewBits> bits;
    for (int64_t i = 0; i < n_seqs; ++i) {
      const int64_t r0 = c.q_start[i], r1 = c.q_start[i + 1];
      for (int64_t x = r0 * n_q_; x < r1 * n_q_; ++x) {
        EXPECT_TRUE(lse[x] == -INFINITY || std::isfinite(lse[x])) << "lse " << lse[x];
        for (int64_t e = 0; e < d_; ++e) EXPECT_TRUE(std::isfinite(out[x * d_ + e]));
      }
      bits.push_back({BitsOf(out.data() + r0 * n_q_ * d_, (r1 - r0) * n_q_ * d_),
                      BitsOf(lse.data() + r0 * n_q_, (r1 - r0) * n_q_)});
    }
    return bits;
  }

 private:
  struct Call {
    std::vector<float> q;
    std::vector<int64_t> q_start, q_pos0, kv_len, start_d, start_r, start_s, n_selected, sink, local, ring;
    std::vector<int32_t> table_d, table_r, table_s, selected;
  };

  WorldSpec spec_;
  int64_t ps_ = 0, d_ = 0, n_kv_ = 0, n_q_ = 0, n_r_ = 0, n_s_ = 0, sink_pages_ = 0;
  std::vector<int32_t> slot_;
  std::vector<Sequence> seqs_;
  std::vector<float> k_d_, v_d_, k_r_, v_r_, k_s_, v_s_;
};

View Whole(const World& w, int64_t s) { return {s, 0, w.seq(s).rows}; }

// Each sequence alone on one thread is the reference; alone on two threads,
// and in random batches of 2-8 sequences in random order on one and two
// threads, every sequence's rows must have the reference's bits.
void CheckBatchInvariance(const World& w, bool sparse, std::mt19937_64& rng) {
  ThreadPool one(1), two(2);
  std::vector<ViewBits> alone;
  for (int64_t s = 0; s < w.size(); ++s) {
    alone.push_back(w.Run({Whole(w, s)}, sparse, one)[0]);
    const ViewBits two_threads = w.Run({Whole(w, s)}, sparse, two)[0];
    EXPECT_EQ(two_threads.out, alone[s].out) << "sequence " << s << " alone, 2 threads";
    EXPECT_EQ(two_threads.lse, alone[s].lse) << "sequence " << s << " alone, 2 threads";
  }
  for (int batch_size = 2; batch_size <= w.size(); ++batch_size) {
    std::vector<int64_t> order(static_cast<size_t>(w.size()));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(static_cast<size_t>(batch_size));
    std::vector<View> views;
    for (int64_t s : order) views.push_back(Whole(w, s));
    for (ThreadPool* pool : {&one, &two}) {
      const std::vector<ViewBits> got = w.Run(views, sparse, *pool);
      for (size_t i = 0; i < views.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "sequence " << views[i].seq << " in a batch of " << batch_size << ", "
                                        << pool->size() << " threads");
        EXPECT_EQ(got[i].out, alone[views[i].seq].out);
        EXPECT_EQ(got[i].lse, alone[views[i].seq].lse);
      }
    }
  }
}

const std::vector<WorldSpec> kWorlds = {
    {16, 3, 64, {kHeadModeRetrieval, kHeadModeStreaming, kHeadModeRetrieval}, 20, 300, 40},
    {64, 4, 128, {kHeadModeStreaming, kHeadModeRetrieval}, 64, 500, 100},
    {32, 1, 32, {kHeadModeRetrieval, kHeadModeRetrieval, kHeadModeStreaming}, 7, 200, 33},
};

TEST(ConformanceBatchInvariance, DenseRowsIgnoreTheirBatchAndThreads) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (const WorldSpec& spec : kWorlds) {
    SCOPED_TRACE(testing::Message() << "P=" << spec.page_size << " group=" << spec.group << " d=" << spec.head_dim);
    const World w(spec, 8, rng);
    CheckBatchInvariance(w, /*sparse=*/false, rng);
  }
}

TEST(ConformanceBatchInvariance, SparseRowsIgnoreTheirBatchAndThreads) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (const WorldSpec& spec : kWorlds) {
    SCOPED_TRACE(testing::Message() << "P=" << spec.page_size << " group=" << spec.group << " d=" << spec.head_dim);
    const World w(spec, 8, rng);
    CheckBatchInvariance(w, /*sparse=*/true, rng);
  }
}

// A prefill chunk's rows have the same bits however the chunk is cut: as
// pieces of one call, or each piece in a call of its own.
TEST(ConformanceBatchInvariance, RowsIgnoreHowTheirChunkIsCut) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool two(2);
  for (const WorldSpec& spec : kWorlds) {
    const World w(spec, 6, rng);
    for (bool sparse : {false, true}) {
      for (int64_t s = 0; s < w.size(); ++s) {
        const int64_t rows = w.seq(s).rows;
        if (rows < 2) continue;
        const ViewBits whole = w.Run({Whole(w, s)}, sparse, two)[0];
        const int64_t cut = std::uniform_int_distribution<int64_t>(1, rows - 1)(rng);
        const std::vector<View> pieces = {{s, 0, cut}, {s, cut, rows}};
        std::vector<ViewBits> got = w.Run(pieces, sparse, two);
        const ViewBits second = w.Run({pieces[1]}, sparse, two)[0];
        EXPECT_EQ(second.out, got[1].out);
        got[0].out.insert(got[0].out.end(), got[1].out.begin(), got[1].out.end());
        got[0].lse.insert(got[0].lse.end(), got[1].lse.begin(), got[1].lse.end());
        EXPECT_EQ(got[0].out, whole.out) << "sparse " << sparse << " rows " << rows << " cut at " << cut;
        EXPECT_EQ(got[0].lse, whole.lse) << "sparse " << sparse << " rows " << rows << " cut at " << cut;
      }
    }
  }
}

// The portable scalar paths keep the same guarantee.
TEST(ConformanceBatchInvariance, ScalarPathsIgnoreTheirBatchAndThreads) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ScalarKernelsScope scalar;
  const World w({16, 2, 24, {kHeadModeStreaming, kHeadModeRetrieval}, 5, 60, 20}, 5, rng);
  CheckBatchInvariance(w, /*sparse=*/false, rng);
  CheckBatchInvariance(w, /*sparse=*/true, rng);
}

}  // namespace
}  // namespace lserve::conformance
