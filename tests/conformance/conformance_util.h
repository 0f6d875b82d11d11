// Shared helpers of the kernel conformance tests: fresh random inputs, NaN
// poisoning, and the tolerance rule of STYLE.md practice 4: a fast kernel's
// error against an f64 oracle must stay within 2x the error of the naive f32
// implementation (the reference kernel) against the same oracle, plus a small
// floor.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/simd_avx2.h"

namespace lserve::conformance {

constexpr double kF32Eps = 1.1920928955078125e-7;

// One random engine per test, seeded freshly each run; the seed is printed
// with every failure (SCOPED_TRACE in the tests).
inline uint64_t FreshSeed() { return (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}(); }

inline std::vector<float> RandomFloats(std::mt19937_64& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

inline void Poison(std::vector<float>& v) { std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN()); }

// The largest |a - b| over the elements, NaN when any element is NaN (an
// unwritten output fails every comparison).
inline double MaxAbsDiff(const std::vector<float>& a, const std::vector<double>& oracle) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - oracle[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    worst = std::max(worst, d);
  }
  return worst;
}

// max_i |a_i - oracle_i| / scale_i.
inline double MaxScaledDiff(const std::vector<float>& a, const std::vector<double>& oracle,
                            const std::vector<double>& scale) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - oracle[i]) / std::max(scale[i], 1e-30);
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    worst = std::max(worst, d);
  }
  return worst;
}

// The practice-4 comparison of one output: errors of the fast kernel and of
// the reference against the oracle (same units), floor in those units.
#define EXPECT_WITHIN_REFERENCE_ERROR(fast_err, ref_err, floor)                                          \
  do {                                                                                                   \
    const double fast_e = (fast_err), ref_e = (ref_err), floor_e = (floor);                              \
    EXPECT_FALSE(std::isnan(fast_e)) << "the fast kernel left NaN (unwritten or invalid) outputs";      \
    EXPECT_FALSE(std::isnan(ref_e)) << "the reference left NaN (unwritten or invalid) outputs";         \
    EXPECT_LE(fast_e, 2.0 * ref_e + floor_e) << "fast error " << fast_e << ", reference error " << ref_e; \
  } while (0)

inline uint16_t RandomHalfScale(std::mt19937_64& rng, float lo, float hi) {
  return F32ToF16(std::uniform_real_distribution<float>(lo, hi)(rng));
}

// n rows of k elements of `dtype` with random contents: plain types from
// uniform values, quantized blocks from random bytes with f16 scales of a
// sensible size (so every code of every nibble, sign and scale bit occurs).
inline std::vector<uint8_t> RandomWeights(std::mt19937_64& rng, DType dtype, int64_t n, int64_t k) {
  const uint64_t row_bytes = *DTypeBytesFor(dtype, static_cast<uint64_t>(k));
  std::vector<uint8_t> bytes(row_bytes * static_cast<uint64_t>(n));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng));
  auto put16 = [&](uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); };
  const int64_t blocks = static_cast<int64_t>(bytes.size()) / DTypeBlockBytes(dtype);
  switch (dtype) {
    case DType::kF32: {
      const std::vector<float> v = RandomFloats(rng, n * k);
      std::memcpy(bytes.data(), v.data(), bytes.size());
      break;
    }
    case DType::kF16:
    case DType::kBF16: {
      const std::vector<float> v = RandomFloats(rng, n * k);
      for (int64_t i = 0; i < n * k; ++i) put16(bytes.data() + 2 * i, dtype == DType::kF16 ? F32ToF16(v[i]) : F32ToBF16(v[i]));
      break;
    }
    case DType::kQ8_0:
      for (int64_t b = 0; b < blocks; ++b) put16(bytes.data() + 34 * b, RandomHalfScale(rng, -0.01f, 0.01f));
      break;
    case DType::kQ4_0:
      for (int64_t b = 0; b < blocks; ++b) put16(bytes.data() + 18 * b, RandomHalfScale(rng, -0.1f, 0.1f));
      break;
    case DType::kQ4_1:
      for (int64_t b = 0; b < blocks; ++b) {
        put16(bytes.data() + 20 * b, RandomHalfScale(rng, 0.0f, 0.1f));
        put16(bytes.data() + 20 * b + 2, RandomHalfScale(rng, -1.0f, 0.0f));
      }
      break;
    case DType::kQ4_K:
      for (int64_t b = 0; b < blocks; ++b) {
        put16(bytes.data() + 144 * b, RandomHalfScale(rng, 0.0f, 0.003f));
        put16(bytes.data() + 144 * b + 2, RandomHalfScale(rng, 0.0f, 0.01f));
      }
      break;
    case DType::kQ6_K:
      for (int64_t b = 0; b < blocks; ++b) put16(bytes.data() + 210 * b + 208, RandomHalfScale(rng, -0.001f, 0.001f));
      break;
    default:
      ADD_FAILURE() << "RandomWeights: unsupported dtype " << DTypeName(dtype);
  }
  return bytes;
}

// Runs the CPU kernels' portable scalar paths (as on a machine without
// AVX2/FMA/F16C) while in scope.
struct ScalarKernelsScope {
  ScalarKernelsScope() { cpu_detail::SetSimdEnabledForTesting(false); }
  ~ScalarKernelsScope() { cpu_detail::SetSimdEnabledForTesting(true); }
  ScalarKernelsScope(const ScalarKernelsScope&) = delete;
  ScalarKernelsScope& operator=(const ScalarKernelsScope&) = delete;
};

inline std::string SeedTrace(uint64_t seed) { return "seed " + std::to_string(seed); }

}  // namespace lserve::conformance
