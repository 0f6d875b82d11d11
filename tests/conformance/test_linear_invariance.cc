// Batch invariance of the CPU linear kernel (RELIABILITY.md 36): a row of y
// has the same bits whether its row of x is alone in the call (m = 1) or at
// any position among m = 2..70 other rows, whatever the thread count of the
// pool (1, 2, 3) and whichever algorithm runs (the GEMV, the panel GEMM, or
// the one LinearCpu picks for m). Every weight dtype, with and without bias,
// compared byte for byte.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear.h"
#include "kernels/ref/linear.h"

namespace lserve::conformance {
namespace {

constexpr int64_t kPoolRows = 70;

// Rows of x and their outputs computed one at a time (m = 1).
struct SingleRows {
  std::vector<float> x;  // [kPoolRows, k]
  std::vector<float> y;  // [kPoolRows, n]
};

testing::AssertionResult SameBits(const float* got, const float* want, int64_t n) {
  if (std::memcmp(got, want, static_cast<size_t>(n) * sizeof(float)) == 0) return testing::AssertionSuccess();
  for (int64_t j = 0; j < n; ++j) {
    uint32_t a, b;
    std::memcpy(&a, got + j, 4);
    std::memcpy(&b, want + j, 4);
    if (a != b) {
      char bits[40];
      std::snprintf(bits, sizeof bits, "0x%08x vs 0x%08x", static_cast<unsigned>(a), static_cast<unsigned>(b));
      return testing::AssertionFailure() << "column " << j << ": " << got[j] << " vs m=1 " << want[j] << " (" << bits
                                         << ")";
    }
  }
  return testing::AssertionFailure();
}

void RunDtype(DType t, int64_t n, int64_t k, bool bias, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << DTypeName(t) << " n=" << n << " k=" << k << (bias ? " bias" : ""));
  const std::vector<uint8_t> w = RandomWeights(rng, t, n, k);
  std::vector<uint8_t> b;
  if (bias) b = RandomWeights(rng, DType::kBF16, 1, n);
  auto params = [&](const float* x, float* y, int64_t m) {
    return LinearParams{x, w.data(), t, bias ? b.data() : nullptr, DType::kBF16, y, m, n, k};
  };

  ThreadPool pool1(1), pool2(2), pool3(3);
  ThreadPool* pools[] = {&pool1, &pool2, &pool3};
  SingleRows single{RandomFloats(rng, kPoolRows * k), std::vector<float>(static_cast<size_t>(kPoolRows * n))};
  Poison(single.y);
  for (int64_t r = 0; r < kPoolRows; ++r) {
    LinearCpu(params(single.x.data() + r * k, single.y.data() + r * n, 1), pool1);
  }
  // m = 1 itself is the same on every pool and with both algorithms.
  for (int64_t r = 0; r < kPoolRows; r += 7) {
    for (ThreadPool* pool : pools) {
      for (LinearAlgo algo : {LinearAlgo::kGemv, LinearAlgo::kGemm}) {
        std::vector<float> y(static_cast<size_t>(n));
        Poison(y);
        LinearCpuWithAlgo(params(single.x.data() + r * k, y.data(), 1), algo, *pool);
        ASSERT_TRUE(SameBits(y.data(), single.y.data() + r * n, n))
            << "m=1 row " << r << " threads=" << pool->size() << " algo=" << static_cast<int>(algo);
      }
    }
  }

  std::uniform_int_distribution<int64_t> pick(0, kPoolRows - 1);
  for (int64_t m = 2; m <= kPoolRows; ++m) {
    // m rows of the pool at random positions (repeats allowed).
    std::vector<int64_t> src(static_cast<size_t>(m));
    std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i) {
      src[i] = pick(rng);
      std::memcpy(x.data() + i * k, single.x.data() + src[i] * k, static_cast<size_t>(k) * sizeof(float));
    }
    ThreadPool& pool = *pools[m % 3];
    // The algorithm LinearCpu picks for m, and each one forced.
    for (int variant = 0; variant < 3; ++variant) {
      Poison(y);
      const LinearParams p = params(x.data(), y.data(), m);
      if (variant == 0) {
        LinearCpu(p, pool);
      } else {
        LinearCpuWithAlgo(p, variant == 1 ? LinearAlgo::kGemv : LinearAlgo::kGemm, pool);
      }
      for (int64_t i = 0; i < m; ++i) {
        ASSERT_TRUE(SameBits(y.data() + i * n, single.y.data() + src[i] * n, n))
            << "m=" << m << " position " << i << " (row " << src[i] << ") threads=" << pool.size()
            << " variant=" << (variant == 0 ? "chosen" : variant == 1 ? "gemv" : "gemm");
      }
    }
  }
}

TEST(ConformanceLinearInvariance, RowBitsIndependentOfBatchThreadsAndAlgorithm) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  // n = 101: several GEMM panels and thread shares, and a partial register
  // tile (101 = 3 * 33 + 2 = 4 * 25 + 1); plain k = 97 leaves a scalar tail.
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                  DType::kQ6_K}) {
    const int64_t block = DTypeBlockElems(t);
    const int64_t k = block == 1 ? 97 : block == 32 ? 96 : 512;
    ASSERT_TRUE(LinearSupports(t, k));
    RunDtype(t, 101, k, /*bias=*/t == DType::kQ4_1 || t == DType::kF16, rng);
  }
}

TEST(ConformanceLinearInvariance, LongRowsAndManyColumns) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  // More columns than one GEMM panel holds, and enough rows x k (m >= 64)
  // that several threads reorder x into lane order.
  RunDtype(DType::kQ4_1, 200, 2048, false, rng);
  RunDtype(DType::kF32, 64, 576, false, rng);
}

TEST(ConformanceLinearInvariance, ScalarFallback) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ScalarKernelsScope scalar;
  RunDtype(DType::kQ4_K, 37, 256, true, rng);
  RunDtype(DType::kBF16, 37, 33, false, rng);
}

}  // namespace
}  // namespace lserve::conformance
