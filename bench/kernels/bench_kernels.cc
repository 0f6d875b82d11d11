// Kernel micro-benchmarks of the CPU backend: the demo model's shapes
// (SmolLM2-135M: hidden 576, intermediate 1536, 9 query / 3 kv heads of 64,
// vocabulary 49152) and the conformance grid's awkward sizes, printed as one
// JSON object per line:
//   {"kernel":"linear","dtype":"Q4_1","m":1,"n":576,"k":576,"threads":2,
//    "ms":0.05,"gflops":13.2,"gbps":4.1}
// gflops counts 2*m*n*k for linear; gbps counts the bytes the kernel must
// read at least once (weights in their stored format + activations), the
// number to compare with the machine's memory bandwidth (decode GEMV is
// bandwidth-bound; prefill GEMM is compared with sgemm's f32 FMA ceiling,
// printed by the "sgemm_ceiling" line: OpenBLAS on one f32 tile).
//
// Usage: bench_kernels [--threads N] [--filter SUBSTRING] [--dtype NAME] [--m 1,8,64] [--quick]
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sparse_attention.h"
#include "kernels/cpu/swiglu.h"

namespace lserve {
namespace {

struct Options {
  int threads = 0;
  std::string filter;
  std::string dtype;  // only this weight dtype (linear), e.g. "Q4_1"
  std::vector<int64_t> ms;  // only these rows of x (linear), every shape; empty = the default grid
  bool quick = false;
};

// Best wall time of `reps` runs after one warm-up (the minimum is the least
// disturbed by other processes on a shared machine).
double BestSeconds(const std::function<void()>& fn, int reps) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

int RepsFor(double approx_flops) { return std::clamp(static_cast<int>(2e9 / std::max(approx_flops, 1.0)), 3, 200); }

std::vector<uint8_t> RandomWeightBytes(std::mt19937_64& rng, DType t, int64_t n, int64_t k) {
  const uint64_t bytes = *DTypeBytesFor(t, static_cast<uint64_t>(n * k));
  std::vector<uint8_t> w(bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  // Keep f16 / f32 scales finite: rewrite plain types from small floats and
  // every block's leading f16 fields as 0.01.
  const uint16_t small = F32ToF16(0.01f);
  if (t == DType::kF32) {
    for (uint64_t i = 0; i < bytes / 4; ++i) {
      const float f = 0.01f * static_cast<float>(i % 17);
      std::memcpy(w.data() + 4 * i, &f, 4);
    }
  } else if (t == DType::kF16 || t == DType::kBF16) {
    const uint16_t h = t == DType::kF16 ? small : F32ToBF16(0.01f);
    for (uint64_t i = 0; i < bytes / 2; ++i) std::memcpy(w.data() + 2 * i, &h, 2);
  } else {
    const int64_t bb = DTypeBlockBytes(t);
    for (uint64_t b = 0; b < bytes / bb; ++b) {
      uint8_t* blk = w.data() + b * bb;
      if (t == DType::kQ6_K) {
        std::memcpy(blk + 208, &small, 2);
      } else {
        std::memcpy(blk, &small, 2);
        if (t == DType::kQ4_1 || t == DType::kQ4_K) std::memcpy(blk + 2, &small, 2);
      }
    }
  }
  return w;
}

void PrintLine(const char* kernel, const std::string& detail, int threads, double seconds, double flops,
               double bytes) {
  std::printf("{\"kernel\":\"%s\",%s,\"threads\":%d,\"ms\":%.4f,\"gflops\":%.2f,\"gbps\":%.2f}\n", kernel,
              detail.c_str(), threads, seconds * 1e3, flops / seconds * 1e-9, bytes / seconds * 1e-9);
  std::fflush(stdout);
}

void BenchLinear(const Options& opt, ThreadPool& pool, std::mt19937_64& rng) {
  struct Shape {
    int64_t n, k;
  };
  const std::vector<Shape> shapes = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}, {49152, 576}};
  std::vector<int64_t> ms = {1, 2, 4, 8, 12, 16, 24, 32, 64, 512};
  if (opt.quick) ms = {1, 512};
  if (!opt.ms.empty()) ms = opt.ms;
  for (DType t : {DType::kQ4_1, DType::kQ8_0, DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_K,
                  DType::kQ6_K}) {
    if (opt.quick && t != DType::kQ4_1 && t != DType::kQ8_0) continue;
    if (!opt.dtype.empty() && DTypeName(t) != opt.dtype) continue;
    for (const Shape& s : shapes) {
      if (s.k % DTypeBlockElems(t) != 0) continue;
      const std::vector<uint8_t> w = RandomWeightBytes(rng, t, s.n, s.k);
      for (int64_t m : ms) {
        if (opt.ms.empty() && s.n == 49152 && m > 1 && m < 512 && m != 16) continue;
        std::vector<float> x(m * s.k, 0.5f), y(m * s.n);
        const LinearParams p{x.data(), w.data(), t, nullptr, DType::kF32, y.data(), m, s.n, s.k};
        const double flops = 2.0 * m * s.n * s.k;
        const double bytes = static_cast<double>(w.size()) + 4.0 * (m * s.k + m * s.n);
        // Both algorithms near the crossover, the chosen one elsewhere.
        const LinearAlgo chosen = ChooseLinearAlgo(m, s.n, s.k, t);
        for (LinearAlgo algo : {LinearAlgo::kGemv, LinearAlgo::kGemm}) {
          if (algo != chosen && (m < 4 || m > 64 || opt.quick)) continue;
          const double sec = BestSeconds([&] { LinearCpuWithAlgo(p, algo, pool); }, RepsFor(flops));
          char detail[200];
          std::snprintf(detail, sizeof detail,
                        "\"dtype\":\"%s\",\"m\":%ld,\"n\":%ld,\"k\":%ld,\"algo\":\"%s\",\"chosen\":%s",
                        std::string(DTypeName(t)).c_str(), static_cast<long>(m), static_cast<long>(s.n),
                        static_cast<long>(s.k), algo == LinearAlgo::kGemv ? "gemv" : "gemm",
                        algo == chosen ? "true" : "false");
          PrintLine("linear", detail, pool.size(), sec, flops, bytes);
        }
      }
    }
  }
  // The ceiling the prefill regime is compared with: single-threaded sgemm
  // on an f32 tile (times the thread count for the whole machine).
  openblas_set_num_threads(1);
  const int64_t m = 512, n = 256, k = 576;
  std::vector<float> a(m * k, 0.5f), b(n * k, 0.25f), c(m * n);
  const double sec = BestSeconds(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(),
                    n);
      },
      20);
  PrintLine("sgemm_ceiling", "\"m\":512,\"n\":256,\"k\":576", 1, sec, 2.0 * m * n * k, 4.0 * (m * k + n * k));
}

// Attention in the demo model's geometry: a prefill of `rows` tokens from
// position 0 (causal), or one decode row over `ctx` cached tokens, for
// `seqs` sequences.
void BenchAttention(const Options& opt, ThreadPool& pool, std::mt19937_64& rng) {
  struct Case {
    const char* name;
    int64_t seqs, rows, ctx;
  };
  const std::vector<Case> cases = {{"prefill", 1, 512, 512},  {"prefill", 1, 128, 128}, {"decode", 1, 1, 512},
                                   {"decode", 1, 1, 4096},    {"decode", 8, 1, 1024},   {"chunk", 1, 64, 2048}};
  const int64_t n_q = 9, n_kv = 3, d = 64, ps = 64;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (const Case& c : cases) {
    const int64_t pages_per_seq = (c.ctx + ps - 1) / ps;
    const int64_t pages = pages_per_seq * c.seqs;
    std::vector<float> kc(pages * n_kv * ps * d), vc(kc.size());
    for (auto& f : kc) f = unit(rng);
    for (auto& f : vc) f = unit(rng);
    std::vector<int32_t> table(pages);
    for (int64_t i = 0; i < pages; ++i) table[i] = static_cast<int32_t>(i);
    std::vector<int64_t> q_start, pos0, kv_len, table_start;
    for (int64_t s = 0; s <= c.seqs; ++s) {
      q_start.push_back(s * c.rows);
      table_start.push_back(s * pages_per_seq);
    }
    for (int64_t s = 0; s < c.seqs; ++s) {
      pos0.push_back(c.ctx - c.rows);
      kv_len.push_back(c.ctx);
    }
    const int64_t rows = c.seqs * c.rows;
    std::vector<float> q(rows * n_q * d), out(q.size()), lse(rows * n_q);
    for (auto& f : q) f = unit(rng);
    PagedAttentionParams p{q.data(), out.data(), lse.data(), n_q, n_kv, d, 0.125f, c.seqs, q_start.data(),
                           pos0.data(), kv_len.data(), table.data(), table_start.data(), kc.data(), vc.data(), ps, 0};
    // Causal pairs (query, visible key) x heads x 4 d flops (QK and PV).
    double pairs = 0;
    for (int64_t r = 0; r < c.rows; ++r) pairs += static_cast<double>(c.ctx - c.rows + r + 1);
    const double flops = pairs * c.seqs * n_q * d * 4.0;
    const double sec = BestSeconds([&] { PagedAttentionCpu(p, pool); }, RepsFor(flops));
    char detail[160];
    std::snprintf(detail, sizeof detail, "\"mode\":\"%s\",\"seqs\":%ld,\"rows\":%ld,\"ctx\":%ld", c.name,
                  static_cast<long>(c.seqs), static_cast<long>(c.rows), static_cast<long>(c.ctx));
    PrintLine("attention", detail, pool.size(), sec, flops, 4.0 * (kc.size() + vc.size()) * 1.0);
  }
  (void)opt;
}

// Sparse attention at long context in the demo model's head geometry (9 query
// / 3 kv heads of 64, pages of 64), each case beside its dense counterpart:
//   prefill of 4096 tokens from 0: dense causal (PagedAttentionCpu, and the
//     sparse kernel with every head retrieval) vs Λ streaming heads (sink 128,
//     local 1024);
//   one decode row over 32768 keys: dense vs 64 selected pages.
// gflops counts 4 d flops per visited (query, key) pair and query head, so a
// sparse case's ms is the number to compare, its gflops the per-key speed;
// gbps counts the K and V bytes read at least once.
void BenchSparseAttention(const Options& opt, ThreadPool& pool, std::mt19937_64& rng) {
  struct Case {
    const char* name;
    int64_t rows, ctx;
    int8_t mode;      // kHeadModeRetrieval or kHeadModeStreaming for every head
    int64_t selected;  // > 0: retrieval heads read this many pages (the newest + spread ones)
    bool dense_kernel;  // PagedAttentionCpu instead of SparseAttentionCpu
  };
  const std::vector<Case> cases = {
      {"prefill_dense", 4096, 4096, kHeadModeRetrieval, 0, true},
      {"prefill_dense", 4096, 4096, kHeadModeRetrieval, 0, false},
      {"prefill_lambda", 4096, 4096, kHeadModeStreaming, 0, false},
      {"decode_dense", 1, 32768, kHeadModeRetrieval, 0, true},
      {"decode_dense", 1, 32768, kHeadModeRetrieval, 0, false},
      {"decode_select", 1, 32768, kHeadModeRetrieval, 64, false},
  };
  const int64_t n_q = 9, n_kv = 3, d = 64, ps = 64, sink = 128, local = 1024;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (const Case& c : cases) {
    if (opt.quick && c.ctx > 4096 && c.selected == 0) continue;
    const int64_t pages = (c.ctx + ps - 1) / ps;
    std::vector<float> kc(pages * n_kv * ps * d), vc(kc.size());
    for (auto& f : kc) f = unit(rng);
    for (auto& f : vc) f = unit(rng);
    std::vector<int32_t> table(pages);
    for (int64_t i = 0; i < pages; ++i) table[i] = static_cast<int32_t>(i);
    std::vector<int64_t> q_start = {0, c.rows}, pos0 = {c.ctx - c.rows}, kv_len = {c.ctx}, table_start = {0, pages};
    std::vector<float> q(c.rows * n_q * d), out(q.size()), lse(c.rows * n_q);
    for (auto& f : q) f = unit(rng);
    std::vector<int8_t> modes(n_kv, c.mode);
    std::vector<int32_t> slots = {0, 1, 2};
    // Selection: pages spread evenly over the context, the newest last.
    std::vector<int32_t> sel;
    std::vector<int64_t> n_sel;
    for (int64_t h = 0; h < n_kv; ++h) {
      for (int64_t i = 0; i < c.selected; ++i) sel.push_back(static_cast<int32_t>((pages - 1) * i / std::max<int64_t>(1, c.selected - 1)));
      n_sel.push_back(c.selected);
    }
    // Visited (query, key) pairs.
    double pairs = 0;
    for (int64_t r = 0; r < c.rows; ++r) {
      const int64_t pos = c.ctx - c.rows + r;
      if (c.mode == kHeadModeStreaming) {
        const StreamingKeyRanges kr = StreamingRangesOf(pos, c.ctx, sink, local);
        pairs += static_cast<double>(kr.sink_end + kr.visible_end - kr.local_begin);
      } else {
        pairs += static_cast<double>(c.selected > 0 ? c.selected * ps : pos + 1);
      }
    }
    const double flops = pairs * n_q * d * 4.0;
    double sec;
    if (c.dense_kernel) {
      PagedAttentionParams p{q.data(), out.data(), lse.data(), n_q, n_kv, d, 0.125f, 1, q_start.data(),
                             pos0.data(), kv_len.data(), table.data(), table_start.data(), kc.data(), vc.data(), ps, 0};
      sec = BestSeconds([&] { PagedAttentionCpu(p, pool); }, RepsFor(flops));
    } else {
      SparseAttentionParams p{};
      p.q = q.data();
      p.out = out.data();
      p.lse = lse.data();
      p.n_q_heads = n_q;
      p.n_kv_heads = n_kv;
      p.head_dim = d;
      p.scale = 0.125f;
      p.n_seqs = 1;
      p.q_start = q_start.data();
      p.q_pos0 = pos0.data();
      p.kv_len = kv_len.data();
      p.page_size = ps;
      p.head_mode = modes.data();
      p.pool_slot = slots.data();
      // Both pools are the same cache; the ring is wide enough not to wrap,
      // so its table is the page order.
      p.page_table_r = p.page_table_s = table.data();
      p.page_table_start_r = p.page_table_start_s = table_start.data();
      p.k_cache_r = p.k_cache_s = kc.data();
      p.v_cache_r = p.v_cache_s = vc.data();
      p.n_retrieval_heads = p.n_streaming_heads = n_kv;
      if (c.selected > 0) {
        p.selected_pages = sel.data();
        p.n_selected = n_sel.data();
        p.max_selected = c.selected;
      }
      p.stream_sink_pages = (sink + ps - 1) / ps;
      p.stream_ring_pages = pages - p.stream_sink_pages;
      p.sink = sink;
      p.local = local;
      sec = BestSeconds([&] { SparseAttentionCpu(p, pool); }, RepsFor(flops));
    }
    char detail[200];
    std::snprintf(detail, sizeof detail, "\"mode\":\"%s\",\"impl\":\"%s\",\"rows\":%ld,\"ctx\":%ld", c.name,
                  c.dense_kernel ? "dense" : "sparse", static_cast<long>(c.rows), static_cast<long>(c.ctx));
    // Bytes: the K and V rows read at least once (a prefill touches every key).
    const double keys_read = c.rows == 1 ? pairs : static_cast<double>(c.ctx);
    PrintLine("sparse_attention", detail, pool.size(), sec, flops, 8.0 * keys_read * n_kv * d);
  }
}

void BenchElementwise(const Options& opt, ThreadPool& pool, std::mt19937_64& rng) {
  for (int64_t m : {1, 512}) {
    std::vector<float> x(m * 1536, 0.3f), up(m * 1536, 0.2f), out(m * 1536), w(1536, 1.0f);
    {
      SwigluParams p{x.data(), up.data(), out.data(), m, 1536};
      const double sec = BestSeconds([&] { SwigluCpu(p, pool); }, 50);
      PrintLine("swiglu", "\"m\":" + std::to_string(m) + ",\"inter\":1536", pool.size(), sec, 0, 12.0 * m * 1536);
    }
    {
      RmsNormParams p{x.data(), w.data(), DType::kF32, out.data(), m, 576, 1e-5f};
      const double sec = BestSeconds([&] { RmsNormCpu(p, pool); }, 50);
      PrintLine("rmsnorm", "\"n\":" + std::to_string(m) + ",\"dim\":576", pool.size(), sec, 0, 8.0 * m * 576);
    }
    {
      std::vector<float> q(m * 9 * 64, 0.1f), k(m * 3 * 64, 0.1f), inv(32);
      for (int i = 0; i < 32; ++i) inv[i] = std::pow(10000.0f, -i / 32.0f);
      std::vector<int64_t> pos(m);
      for (int64_t i = 0; i < m; ++i) pos[i] = i;
      RopeParams p{q.data(), k.data(), m, 9, 3, 64, pos.data(), inv.data(), 1.0f};
      const double sec = BestSeconds([&] { RopeCpu(p, pool); }, 50);
      PrintLine("rope", "\"n\":" + std::to_string(m) + ",\"heads\":12,\"head_dim\":64", pool.size(), sec, 0,
                8.0 * m * 12 * 64);
    }
  }
  {
    std::atomic<int64_t> sink{0};
    const double sec = BestSeconds(
        [&] {
          for (int i = 0; i < 1000; ++i) pool.ParallelFor(64, [&](int64_t b, int64_t e) { sink += e - b; });
        },
        5);
    PrintLine("parallel_for_x1000", "\"n\":64", pool.size(), sec, 0, 0);
  }
  (void)opt;
  (void)rng;
}

}  // namespace
}  // namespace lserve

int main(int argc, char** argv) {
  lserve::Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      opt.threads = std::atoi(argv[++i]);
    } else if (a == "--filter" && i + 1 < argc) {
      opt.filter = argv[++i];
    } else if (a == "--dtype" && i + 1 < argc) {
      opt.dtype = argv[++i];
    } else if (a == "--m" && i + 1 < argc) {
      for (const char* c = argv[++i]; *c != '\0';) {
        char* end = nullptr;
        const long v = std::strtol(c, &end, 10);
        if (end == c || v <= 0) break;
        opt.ms.push_back(v);
        c = *end == ',' ? end + 1 : end;
      }
    } else if (a == "--quick") {
      opt.quick = true;
    } else {
      std::fprintf(stderr, "usage: bench_kernels [--threads N] [--filter linear|attention|sparse_attention|elementwise] [--dtype Q4_1] [--m 1,8,64,512] [--quick]\n");
      return 2;
    }
  }
  lserve::ThreadPool pool(opt.threads);
  // Let the clock ramp up before the first measurement.
  const auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  volatile double spin = 0;
  while (std::chrono::steady_clock::now() < warm_until) spin = spin + 1.0;
  std::mt19937_64 rng(std::random_device{}());
  auto wanted = [&](const char* name) { return opt.filter.empty() || std::string(name).find(opt.filter) != std::string::npos; };
  if (wanted("linear")) lserve::BenchLinear(opt, pool, rng);
  if (wanted("attention")) lserve::BenchAttention(opt, pool, rng);
  if (wanted("sparse_attention")) lserve::BenchSparseAttention(opt, pool, rng);
  if (wanted("elementwise")) lserve::BenchElementwise(opt, pool, rng);
  return 0;
}
