#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "core/utf8.h"

namespace lserve {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  LSERVE_ASSIGN_OR_RETURN(int h, Half(x));
  LSERVE_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(Status, PropagatesThroughAssignOrReturn) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().ToString(), "invalid_argument: odd: 3");
  EXPECT_EQ(r.status().Annotate("ctx").message(), "ctx: odd: 3");
}

TEST(DType, HalfConversionsRoundTripEveryF16) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(F32ToF16(f), h) << std::hex << h;
  }
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // rounds to inf
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
}

TEST(DType, F32ToF16RoundsToNearestEven) {
  // Midway between 1 and the next f16 (1 + 2^-10): ties go to even (1.0).
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  std::mt19937 rng(123);
  std::uniform_real_distribution<float> d(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float f = d(rng);
    const uint16_t h = F32ToF16(f);
    const float back = F16ToF32(h);
    if (std::isinf(back)) {
      EXPECT_GE(std::fabs(f), 65504.0f);
      continue;
    }
    // No other f16 is closer.
    const float up = F16ToF32(static_cast<uint16_t>(h + 1));
    const float dn = F16ToF32(static_cast<uint16_t>(h - 1));
    EXPECT_LE(std::fabs(back - f), std::fabs(up - f) + 0.0f) << f;
    EXPECT_LE(std::fabs(back - f), std::fabs(dn - f) + 0.0f) << f;
  }
}

TEST(DType, BF16) {
  EXPECT_EQ(BF16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(F32FromBits(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(F32ToBF16(F32FromBits(0x3f818000)), 0x3f82);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(NAN))));
}

TEST(DType, BytesFor) {
  EXPECT_EQ(*DTypeBytesFor(DType::kQ4_1, 64), 40u);
  EXPECT_FALSE(DTypeBytesFor(DType::kQ4_1, 33).has_value());
  EXPECT_FALSE(DTypeBytesFor(DType::kF64, UINT64_MAX / 4).has_value());
  EXPECT_EQ(DTypeFromName("BF16"), DType::kBF16);
  EXPECT_FALSE(DTypeFromName("F8").has_value());
}

TEST(Utf8, ValidityAndSanitize) {
  EXPECT_TRUE(utf8::IsValid("héllo 字 🙂"));
  EXPECT_FALSE(utf8::IsValid("\xC0\x80"));          // overlong
  EXPECT_FALSE(utf8::IsValid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(utf8::IsValid("\xF4\x90\x80\x80"));  // > U+10FFFF
  // Maximal-subpart replacement as Python's errors="replace".
  EXPECT_EQ(utf8::Sanitize("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(utf8::Sanitize("a\xFF\xFEz"), "a\xEF\xBF\xBD\xEF\xBF\xBDz");
  EXPECT_EQ(utf8::Sanitize("\xF0\x9F\x99"), "\xEF\xBF\xBD");
}

TEST(Utf8, CompletePrefixHoldsBackOnlyCompletableTails) {
  EXPECT_EQ(utf8::CompletePrefixLength("ab"), 2u);
  EXPECT_EQ(utf8::CompletePrefixLength("ab\xF0\x9F"), 2u);
  EXPECT_EQ(utf8::CompletePrefixLength("ab\xF0\x9F\x99"), 2u);
  EXPECT_EQ(utf8::CompletePrefixLength("ab\xF0\x9F\x99\x82"), 6u);
  EXPECT_EQ(utf8::CompletePrefixLength("ab\xFF"), 3u);      // invalid: not waited on
  EXPECT_EQ(utf8::CompletePrefixLength("ab\xE2\x28"), 4u);  // broken, not completable
  EXPECT_EQ(utf8::CompletePrefixLength(""), 0u);
}

TEST(MappedFile, MapsAndRefuses) {
  const std::string path = testing::TempDir() + "/lserve_map_test.bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("hello", f);
  std::fclose(f);
  auto m = MappedFile::Open(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), "hello");
  EXPECT_EQ(MappedFile::Open(path + ".missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(MappedFile::Open(testing::TempDir()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadTextFile(path, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ReadTextFile(path), "hello");
}

}  // namespace
}  // namespace lserve
