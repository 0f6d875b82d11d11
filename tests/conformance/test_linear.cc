// Linear: every weight dtype x awkward sizes, both CPU regimes (GEMV for few
// rows, panel GEMM for many), with and without bias.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "conformance_util.h"
#include "core/thread_pool.h"
#include "formats/gguf_quant.h"
#include "kernels/cpu/linear.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/weight_element.h"

namespace lserve::conformance {
namespace {

struct LinearCase {
  DType w_dtype;
  int64_t m, n, k;
  bool bias;
  DType bias_dtype;
};

// f64 oracle over the exactly dequantized weights; scale[i] = sum |x||w| + |b|
// is the magnitude the f32 rounding errors are proportional to.
void LinearOracle(const LinearParams& p, std::vector<double>& y, std::vector<double>& scale) {
  const uint64_t row_bytes = *DTypeBytesFor(p.w_dtype, static_cast<uint64_t>(p.k));
  std::vector<float> w_row(p.k);
  y.assign(static_cast<size_t>(p.m * p.n), 0.0);
  scale.assign(static_cast<size_t>(p.m * p.n), 0.0);
  for (int64_t j = 0; j < p.n; ++j) {
    ASSERT_TRUE(DequantizeRow(p.w_dtype, static_cast<const uint8_t*>(p.w) + j * row_bytes, p.k, w_row.data()).ok());
    const double b = p.bias != nullptr ? LoadPlainFloat(p.bias, p.bias_dtype, j) : 0.0;
    for (int64_t i = 0; i < p.m; ++i) {
      double acc = 0.0, mag = 0.0;
      for (int64_t c = 0; c < p.k; ++c) {
        acc += static_cast<double>(p.x[i * p.k + c]) * w_row[c];
        mag += std::fabs(static_cast<double>(p.x[i * p.k + c]) * w_row[c]);
      }
      y[i * p.n + j] = acc + b;
      scale[i * p.n + j] = mag + std::fabs(b);
    }
  }
}

void RunLinearCase(const LinearCase& c, ThreadPool& pool, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << DTypeName(c.w_dtype) << " m=" << c.m << " n=" << c.n << " k=" << c.k
                                  << " bias=" << (c.bias ? DTypeName(c.bias_dtype) : "none"));
  const std::vector<float> x = RandomFloats(rng, c.m * c.k);
  const std::vector<uint8_t> w = RandomWeights(rng, c.w_dtype, c.n, c.k);
  std::vector<uint8_t> bias;
  if (c.bias) bias = RandomWeights(rng, c.bias_dtype, 1, c.n);
  std::vector<float> y_ref(c.m * c.n);
  Poison(y_ref);
  LinearParams p{x.data(), w.data(), c.w_dtype, c.bias ? bias.data() : nullptr, c.bias_dtype, y_ref.data(),
                 c.m, c.n, c.k};
  LinearRef(p);
  std::vector<double> oracle, scale;
  LinearOracle(p, oracle, scale);
  const double ref_error = MaxScaledDiff(y_ref, oracle, scale);
  // The reference itself stays within the f32 worst-case bound.
  EXPECT_LE(ref_error, static_cast<double>(c.k + 1) * kF32Eps);
  const double floor = 2.0 * std::sqrt(static_cast<double>(c.k)) * kF32Eps;
  // Both algorithms on every shape, whichever LinearCpu would pick.
  for (LinearAlgo algo : {LinearAlgo::kGemv, LinearAlgo::kGemm}) {
    SCOPED_TRACE(algo == LinearAlgo::kGemv ? "gemv" : "gemm");
    std::vector<float> y_cpu(c.m * c.n);
    Poison(y_cpu);
    p.y = y_cpu.data();
    LinearCpuWithAlgo(p, algo, pool);
    EXPECT_WITHIN_REFERENCE_ERROR(MaxScaledDiff(y_cpu, oracle, scale), ref_error, floor);
  }
}

TEST(ConformanceLinear, EveryWeightDtypeAwkwardSizes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  // m: 1, 3, 5 and 17 exercise the GEMV's row groups (1, 3, 4+1, 4x4+1).
  const std::vector<int64_t> ms = {1, 3, 5, 17, 97};
  const std::vector<int64_t> ns = {1, 17, 129};
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                  DType::kQ6_K}) {
    const int64_t block = DTypeBlockElems(t);
    std::vector<int64_t> ks;
    if (block == 1) {
      ks = {1, 3, 17, 97, 257};
    } else if (block == 32) {
      ks = {32, 96, 288};
    } else {
      ks = {256, 512};
    }
    for (int64_t m : ms) {
      for (int64_t n : ns) {
        for (int64_t k : ks) {
          ASSERT_TRUE(LinearSupports(t, k));
          RunLinearCase({t, m, n, k, false, DType::kF32}, pool, rng);
        }
      }
    }
  }
}

TEST(ConformanceLinear, BiasDtypes) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(3);  // an odd thread count: uneven static chunks
  for (DType bias_dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t m : {1, 17}) {
      RunLinearCase({DType::kQ4_1, m, 97, 64, true, bias_dtype}, pool, rng);
      RunLinearCase({DType::kBF16, m, 129, 17, true, bias_dtype}, pool, rng);
      RunLinearCase({DType::kF32, m, 3, 257, true, bias_dtype}, pool, rng);
    }
  }
}

TEST(ConformanceLinear, ScalarFallback) {
  const uint64_t seed = FreshSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ThreadPool pool(2);
  ScalarKernelsScope scalar;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                  DType::kQ6_K}) {
    const int64_t k = DTypeBlockElems(t) == 1 ? 97 : 2 * DTypeBlockElems(t);
    RunLinearCase({t, 3, 17, k, true, DType::kBF16}, pool, rng);
    RunLinearCase({t, 17, 17, k, false, DType::kF32}, pool, rng);
  }
}

TEST(ConformanceLinear, AlgorithmChoice) {
  EXPECT_EQ(ChooseLinearAlgo(1, 576, 576, DType::kQ4_1), LinearAlgo::kGemv);
  EXPECT_EQ(ChooseLinearAlgo(8, 49152, 576, DType::kQ8_0), LinearAlgo::kGemv);
  EXPECT_EQ(ChooseLinearAlgo(512, 576, 576, DType::kQ4_1), LinearAlgo::kGemm);
  EXPECT_EQ(ChooseLinearAlgo(512, 576, 576, DType::kF32), LinearAlgo::kGemm);
  // Monotone in m: once the GEMM wins it keeps winning.
  for (DType t : {DType::kF32, DType::kBF16, DType::kQ4_1, DType::kQ8_0, DType::kQ6_K}) {
    bool gemm = false;
    for (int64_t m = 1; m <= 1024; ++m) {
      const bool now = ChooseLinearAlgo(m, 1536, 576, t) == LinearAlgo::kGemm;
      EXPECT_TRUE(now || !gemm) << "m=" << m;
      gemm = now;
    }
    EXPECT_TRUE(gemm);
  }
}

TEST(ConformanceLinear, SupportQueries) {
  EXPECT_TRUE(LinearSupports(DType::kQ4_K, 512));
  EXPECT_FALSE(LinearSupports(DType::kQ4_K, 100));
  EXPECT_FALSE(LinearSupports(DType::kQ8_0, 33));
  EXPECT_TRUE(LinearSupports(DType::kF16, 33));
  EXPECT_FALSE(LinearSupports(DType::kI32, 32));
  EXPECT_FALSE(LinearSupports(DType::kF32, 0));
  EXPECT_TRUE(LinearSupportsBias(DType::kBF16));
  EXPECT_FALSE(LinearSupportsBias(DType::kQ8_0));
}

}  // namespace
}  // namespace lserve::conformance
