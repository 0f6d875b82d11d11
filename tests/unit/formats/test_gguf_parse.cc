// GgufFile: the container parser. Every corrupt case of llama.cpp's
// tests/test-gguf.cpp (handcrafted files) and of RELIABILITY.md A7 gets a
// clear error and no crash; valid files of every value type round-trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "gguf_test_util.h"

namespace lserve {
namespace {

using testing::GgufBytes;
using testing::GgufTestFile;
using testing::GgufTestTensor;
using testing::Kv;
using testing::KvArray;
using testing::KvScalar;
using testing::KvString;
using testing::KvStringArray;
using testing::PatternBytes;
using namespace lserve::testing;  // value type ids kGU8 ...

Result<std::shared_ptr<const GgufFile>> ParseBytes(std::vector<uint8_t> bytes) {
  return GgufFile::ParseOwned(std::move(bytes), "test.gguf");
}

// Parses and expects an InvalidArgument whose message contains `needle`.
void ExpectError(const std::vector<uint8_t>& bytes, const std::string& needle) {
  auto r = ParseBytes(bytes);
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("test.gguf"), std::string::npos) << r.status().ToString();
}

std::shared_ptr<const GgufFile> ExpectOk(const std::vector<uint8_t>& bytes) {
  auto r = ParseBytes(bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

GgufTestTensor F32Tensor(const std::string& name, std::vector<int64_t> ne) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return GgufTestTensor{.name = name, .type = 0, .ne = std::move(ne), .data = PatternBytes(n * 4)};
}

// ---------------------------------------------------------------------------
// Header (llama.cpp HANDCRAFTED_HEADER_*)

TEST(GgufHeader, BadMagic) {
  GgufTestFile f;
  f.magic = "FUGG";
  ExpectError(f.Build(), "magic");
}

TEST(GgufHeader, TooShort) {
  ExpectError({}, "not a GGUF file");
  ExpectError({'G', 'G', 'U'}, "not a GGUF file");
  ExpectError({'G', 'G', 'U', 'F', 3, 0}, "version");
}

TEST(GgufHeader, BadVersions) {
  for (uint32_t v : {0u, 1u, 4u, 1000u}) {
    GgufTestFile f;
    f.version = v;
    ExpectError(f.Build(), "version");
  }
  GgufTestFile v1;
  v1.version = 1;
  ExpectError(v1.Build(), "version 1 is no longer supported");
}

TEST(GgufHeader, BigEndianIsNamed) {
  GgufTestFile f;
  f.version = 0x03000000;  // 3, byte-swapped
  ExpectError(f.Build(), "big-endian");
}

TEST(GgufHeader, HugeTensorCount) {
  GgufTestFile f;
  f.n_tensors = UINT64_MAX;
  ExpectError(f.Build(), "tensor count");
  f.n_tensors = (1ull << 40);
  ExpectError(f.Build(), "tensor count");
}

TEST(GgufHeader, HugeKvCount) {
  GgufTestFile f;
  f.n_kv = UINT64_MAX;
  ExpectError(f.Build(), "metadata count");
  // One more entry than the bytes hold.
  f.kvs = {KvScalar<uint32_t>("a", kGU32, 1)};
  f.n_kv = 2;
  ExpectError(f.Build(), "");
}

TEST(GgufHeader, EmptyFileIsValid) {
  for (uint32_t version : {2u, 3u}) {
    GgufTestFile f;
    f.version = version;
    auto g = ExpectOk(f.Build());
    ASSERT_TRUE(g);
    EXPECT_EQ(g->version(), version);
    EXPECT_EQ(g->alignment(), 32u);
    EXPECT_TRUE(g->metadata().empty());
    EXPECT_TRUE(g->tensors().empty());
  }
}

// ---------------------------------------------------------------------------
// Key-values (HANDCRAFTED_KV_*)

TEST(GgufKv, KeyLengthMinusOne) {
  GgufTestFile f;
  f.kvs = {GgufBytes().Put<uint64_t>(UINT64_MAX).Put<uint32_t>(kGU8).Put<uint8_t>(1).take()};
  ExpectError(f.Build(), "limit");
}

TEST(GgufKv, KeyLongerThanFile) {
  GgufTestFile f;
  f.kvs = {GgufBytes().Put<uint64_t>(1000).Put<uint32_t>(kGU8).Put<uint8_t>(1).take()};
  ExpectError(f.Build(), "truncated");
}

TEST(GgufKv, EmptyKey) {
  GgufTestFile f;
  f.kvs = {KvScalar<uint8_t>("", kGU8, 1)};
  ExpectError(f.Build(), "empty key");
}

TEST(GgufKv, BadValueType) {
  for (uint32_t t : {13u, 100u, 0xffffffffu}) {
    GgufTestFile f;
    f.kvs = {Kv("key", t, {1, 2, 3, 4, 5, 6, 7, 8})};
    ExpectError(f.Build(), "not a GGUF value type");
  }
}

TEST(GgufKv, BadArrayElementType) {
  GgufTestFile f;
  f.kvs = {Kv("key", kGArray, GgufBytes().Put<uint32_t>(13).Put<uint64_t>(1).Put<uint32_t>(0).take())};
  ExpectError(f.Build(), "not a GGUF value type");
}

TEST(GgufKv, DuplicateKey) {
  GgufTestFile f;
  f.kvs = {KvScalar<uint32_t>("my_key_0", kGU32, 1), KvScalar<uint32_t>("my_key_1", kGU32, 2),
           KvString("my_key_0", "again")};
  ExpectError(f.Build(), "duplicate metadata key 'my_key_0'");
}

TEST(GgufKv, Alignment) {
  for (uint32_t bad : {0u, 13u, 48u}) {
    GgufTestFile f;
    f.kvs = {KvScalar<uint32_t>("general.alignment", kGU32, bad)};
    ExpectError(f.Build(), "power of two");
  }
  GgufTestFile wrong_type;
  wrong_type.kvs = {KvScalar<int32_t>("general.alignment", kGI32, 32)};
  ExpectError(wrong_type.Build(), "expected u32");
  GgufTestFile wrong_type64;
  wrong_type64.kvs = {KvScalar<uint64_t>("general.alignment", kGU64, 32)};
  ExpectError(wrong_type64.Build(), "expected u32");

  for (uint32_t good : {1u, 8u, 64u, 4096u}) {
    GgufTestFile f;
    f.alignment = good;
    f.kvs = {KvScalar<uint32_t>("general.alignment", kGU32, good)};
    f.tensors = {F32Tensor("a", {3}), F32Tensor("b", {5, 2})};
    auto g = ExpectOk(f.Build());
    ASSERT_TRUE(g);
    EXPECT_EQ(g->alignment(), good);
    EXPECT_EQ(g->data_offset() % good, 0u);
    EXPECT_EQ(g->tensors()[1].offset, (12 + good - 1) / good * good);
  }
}

TEST(GgufKv, StringLimits) {
  const std::string big(GgufLimits::kMaxStringBytes, 'x');
  GgufTestFile ok;
  ok.kvs = {KvString("big", big)};
  auto g = ExpectOk(ok.Build());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->GetStringView("big")->size(), big.size());

  GgufTestFile too_big;
  too_big.kvs = {KvString("big", big + "y")};
  ExpectError(too_big.Build(), "above the limit");

  GgufTestFile truncated;
  truncated.kvs = {Kv("s", kGString, GgufBytes().Put<uint64_t>(100).Put<uint32_t>(7).take())};
  ExpectError(truncated.Build(), "truncated");
}

TEST(GgufKv, ArrayLimits) {
  GgufTestFile too_many;
  too_many.kvs = {Kv("a", kGArray, GgufBytes().Put<uint32_t>(kGU8).Put<uint64_t>((1u << 24) + 1).take())};
  ExpectError(too_many.Build(), "above the limit");

  GgufTestFile beyond_bytes;
  beyond_bytes.kvs = {Kv("a", kGArray, GgufBytes().Put<uint32_t>(kGU32).Put<uint64_t>(1000).Put<uint64_t>(0).take())};
  ExpectError(beyond_bytes.Build(), "remaining bytes");

  // 2^24 strings need >= 2^27 bytes of lengths: refused before any allocation.
  GgufTestFile strings;
  strings.kvs = {Kv("a", kGArray, GgufBytes().Put<uint32_t>(kGString).Put<uint64_t>(1u << 24).take())};
  ExpectError(strings.Build(), "remaining bytes");

  GgufTestFile max_count;
  max_count.kvs = {Kv("a", kGArray, GgufBytes().Put<uint32_t>(kGArray).Put<uint64_t>(UINT64_MAX).take())};
  ExpectError(max_count.Build(), "above the limit");

  GgufTestFile short_element;
  short_element.kvs = {Kv("a", kGArray,
                          GgufBytes().Put<uint32_t>(kGString).Put<uint64_t>(2).Str("ok").Put<uint64_t>(50).take())};
  short_element.kvs.push_back(KvScalar<uint64_t>("pad", kGU64, 0));
  ExpectError(short_element.Build(), "'a'[1]");
}

// Array nested `depth` levels deep (depth 1 = a plain array of u8).
std::vector<uint8_t> NestedArrayValue(int depth) {
  if (depth == 1) return GgufBytes().Put<uint32_t>(kGU8).Put<uint64_t>(2).Put<uint8_t>(7).Put<uint8_t>(9).take();
  return GgufBytes().Put<uint32_t>(kGArray).Put<uint64_t>(1).Raw(NestedArrayValue(depth - 1)).take();
}

TEST(GgufKv, NestingDepthCap) {
  GgufTestFile ok;
  ok.kvs = {Kv("deep", kGArray, NestedArrayValue(GgufLimits::kMaxArrayDepth))};
  auto g = ExpectOk(ok.Build());
  ASSERT_TRUE(g);
  const GgufValue* v = g->Find("deep");
  for (int d = 1; d < GgufLimits::kMaxArrayDepth; ++d) {
    ASSERT_EQ(v->element_type(), GgufValueType::kArray);
    ASSERT_EQ(v->array_size(), 1u);
    v = &v->ArrayAt(*g, 0);
  }
  EXPECT_EQ(v->element_type(), GgufValueType::kU8);
  EXPECT_EQ(v->IntAt(1), 9);

  GgufTestFile too_deep;
  too_deep.kvs = {Kv("deep", kGArray, NestedArrayValue(GgufLimits::kMaxArrayDepth + 1))};
  ExpectError(too_deep.Build(), "nested deeper");
}

TEST(GgufKv, TruncatedScalar) {
  GgufTestFile f;
  f.kvs = {Kv("x", kGU64, {1, 2, 3})};
  ExpectError(f.Build(), "truncated");
}

// ---------------------------------------------------------------------------
// Metadata round trip: every value type, scalars and arrays, random values
// (fresh each run), as llama.cpp's HANDCRAFTED_KV_SUCCESS and roundtrip tests.

TEST(GgufKv, EveryTypeRoundTrips) {
  std::random_device rd;
  const uint32_t seed = rd();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  GgufTestFile f;
  const uint8_t u8 = rng(), b = rng() % 2;
  const int8_t i8 = static_cast<int8_t>(rng());
  const uint16_t u16 = rng();
  const int16_t i16 = static_cast<int16_t>(rng());
  const uint32_t u32 = rng();
  const int32_t i32 = static_cast<int32_t>(rng());
  const float f32 = std::ldexp(static_cast<float>(rng() % 100000) - 50000.f, -7);
  const uint64_t u64 = rng() | (1ull << 63);
  const int64_t i64 = -static_cast<int64_t>(rng() >> 2);
  const double f64 = std::ldexp(static_cast<double>(rng() >> 11), -60);
  std::string str;
  for (int i = 0; i < 40; ++i) str += static_cast<char>(rng() % 255 + 1);
  f.kvs = {
      KvScalar("u8", kGU8, u8),   KvScalar("i8", kGI8, i8),     KvScalar("u16", kGU16, u16),
      KvScalar("i16", kGI16, i16), KvScalar("u32", kGU32, u32),  KvScalar("i32", kGI32, i32),
      KvScalar("f32", kGF32, f32), KvScalar("bool", kGBool, b),  KvString("string", str),
      KvScalar("u64", kGU64, u64), KvScalar("i64", kGI64, i64),  KvScalar("f64", kGF64, f64),
  };
  std::vector<int32_t> ai32(rng() % 50);
  for (auto& x : ai32) x = static_cast<int32_t>(rng());
  std::vector<float> af32(rng() % 50);
  for (auto& x : af32) x = static_cast<float>(static_cast<int32_t>(rng())) / 1024.f;
  std::vector<uint8_t> abool(rng() % 50);
  for (auto& x : abool) x = rng() % 2;
  std::vector<uint64_t> au64(rng() % 50);
  for (auto& x : au64) x = rng() >> 1;
  std::vector<int16_t> ai16(rng() % 50);
  for (auto& x : ai16) x = static_cast<int16_t>(rng());
  std::vector<double> af64(rng() % 50);
  for (auto& x : af64) x = static_cast<double>(rng() % 1000) / 8;
  std::vector<std::string> astr(rng() % 50);
  for (auto& s : astr) s = std::to_string(rng());
  f.kvs.push_back(KvArray("arr.i32", kGI32, ai32));
  f.kvs.push_back(KvArray("arr.f32", kGF32, af32));
  f.kvs.push_back(KvArray("arr.bool", kGBool, abool));
  f.kvs.push_back(KvArray("arr.u64", kGU64, au64));
  f.kvs.push_back(KvArray("arr.i16", kGI16, ai16));
  f.kvs.push_back(KvArray("arr.f64", kGF64, af64));
  f.kvs.push_back(KvStringArray("arr.str", astr));
  f.kvs.push_back(KvArray("arr.empty", kGU32, std::vector<uint32_t>{}));
  f.kvs.push_back(KvStringArray("arr.empty_str", {}));
  // An array of arrays of strings: [["x", "yy"], [], ["z"]].
  f.kvs.push_back(Kv("arr.nested", kGArray,
                     GgufBytes().Put<uint32_t>(kGArray).Put<uint64_t>(3)
                         .Put<uint32_t>(kGString).Put<uint64_t>(2).Str("x").Str("yy")
                         .Put<uint32_t>(kGString).Put<uint64_t>(0)
                         .Put<uint32_t>(kGString).Put<uint64_t>(1).Str("z").take()));

  auto g = ExpectOk(f.Build());
  ASSERT_TRUE(g);
  ASSERT_EQ(g->metadata().size(), f.kvs.size());
  EXPECT_EQ(g->metadata()[0].key, "u8");
  EXPECT_EQ(*g->GetUInt("u8"), u8);
  EXPECT_EQ(*g->GetInt("i8"), i8);
  EXPECT_EQ(*g->GetUInt("u16"), u16);
  EXPECT_EQ(*g->GetInt("i16"), i16);
  EXPECT_EQ(*g->GetUInt("u32"), u32);
  EXPECT_EQ(*g->GetInt("i32"), i32);
  EXPECT_EQ(*g->GetFloat("f32"), f32);
  EXPECT_EQ(*g->GetBool("bool"), b != 0);
  EXPECT_EQ(*g->GetString("string"), str);
  EXPECT_EQ(*g->GetUInt("u64"), u64);
  EXPECT_EQ(*g->GetInt("i64"), i64);
  EXPECT_EQ(*g->GetFloat("f64"), f64);
  const std::pair<const char*, GgufValueType> kTypes[] = {
      {"u8", GgufValueType::kU8},     {"i8", GgufValueType::kI8},     {"u16", GgufValueType::kU16},
      {"i16", GgufValueType::kI16},   {"u32", GgufValueType::kU32},   {"i32", GgufValueType::kI32},
      {"f32", GgufValueType::kF32},   {"bool", GgufValueType::kBool}, {"string", GgufValueType::kString},
      {"u64", GgufValueType::kU64},   {"i64", GgufValueType::kI64},   {"f64", GgufValueType::kF64},
      {"arr.str", GgufValueType::kArray}};
  for (const auto& [key, type] : kTypes) EXPECT_EQ(g->Find(key)->type(), type) << key;

  auto ri32 = g->GetI32Array("arr.i32");
  ASSERT_TRUE(ri32.ok());
  EXPECT_EQ(*ri32, ai32);
  EXPECT_EQ(*g->GetF32Array("arr.f32"), af32);
  auto rb = g->GetBoolArray("arr.bool");
  ASSERT_EQ(rb->size(), abool.size());
  for (size_t i = 0; i < abool.size(); ++i) EXPECT_EQ((*rb)[i], abool[i] != 0);
  auto ru64 = g->GetIntArray("arr.u64");
  ASSERT_EQ(ru64->size(), au64.size());
  for (size_t i = 0; i < au64.size(); ++i) EXPECT_EQ(static_cast<uint64_t>((*ru64)[i]), au64[i]);
  auto ri16 = g->GetIntArray("arr.i16");
  for (size_t i = 0; i < ai16.size(); ++i) EXPECT_EQ((*ri16)[i], ai16[i]);
  EXPECT_EQ(*g->GetFloatArray("arr.f64"), af64);
  auto rs = g->GetStringArray("arr.str");
  ASSERT_EQ(rs->size(), astr.size());
  for (size_t i = 0; i < astr.size(); ++i) EXPECT_EQ((*rs)[i], astr[i]);
  EXPECT_TRUE(g->GetI32Array("arr.empty")->empty());
  EXPECT_TRUE(g->GetStringArray("arr.empty_str")->empty());

  const GgufValue* nested = g->Find("arr.nested");
  ASSERT_EQ(nested->element_type(), GgufValueType::kArray);
  ASSERT_EQ(nested->array_size(), 3u);
  EXPECT_EQ(nested->ArrayAt(*g, 0).array_size(), 2u);
  EXPECT_EQ(nested->ArrayAt(*g, 0).StringAt(*g, 1), "yy");
  EXPECT_EQ(nested->ArrayAt(*g, 1).array_size(), 0u);
  EXPECT_EQ(nested->ArrayAt(*g, 2).StringAt(*g, 0), "z");
}

TEST(GgufKv, TypedGettersNameTheKey) {
  GgufTestFile f;
  f.kvs = {KvString("s", "text"), KvScalar<int32_t>("neg", kGI32, -5), KvScalar<uint64_t>("big", kGU64, UINT64_MAX),
           KvScalar<uint32_t>("u", kGU32, 7), KvArray("ai", kGU32, std::vector<uint32_t>{1, 0x80000000u}),
           KvScalar<float>("f", kGF32, 1.5f)};
  auto g = ExpectOk(f.Build());
  ASSERT_TRUE(g);
  auto s = g->GetUInt("s");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("'s' has type string"), std::string::npos) << s.status().message();
  EXPECT_FALSE(g->GetUInt("neg").ok());
  EXPECT_EQ(*g->GetInt("neg"), -5);
  EXPECT_FALSE(g->GetInt("big").ok());
  EXPECT_EQ(*g->GetUInt("big"), UINT64_MAX);
  EXPECT_EQ(*g->GetFloat("u"), 7.0);
  EXPECT_FALSE(g->GetInt("f").ok());
  EXPECT_FALSE(g->GetString("u").ok());
  EXPECT_FALSE(g->GetBool("u").ok());
  EXPECT_FALSE(g->GetStringArray("s").ok());
  auto ai = g->GetI32Array("ai");
  ASSERT_FALSE(ai.ok());
  EXPECT_NE(ai.status().message().find("does not fit"), std::string::npos);
  EXPECT_EQ((*g->GetIntArray("ai"))[1], 0x80000000ll);
  EXPECT_FALSE(g->GetF32Array("ai").ok());
  auto missing = g->GetString("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);
}

TEST(GgufKv, LargeStringArraysAreViewsIntoTheFile) {
  // 2^17 tokens, as a real vocabulary: no per-string copy.
  std::vector<std::string> tokens(1 << 17);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = "tok" + std::to_string(i);
  GgufTestFile f;
  f.kvs = {KvStringArray("tokenizer.ggml.tokens", tokens)};
  const std::vector<uint8_t> bytes = f.Build();
  auto r = GgufFile::Parse(bytes, "tokens.gguf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto arr = (*r)->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(arr.ok());
  ASSERT_EQ(arr->size(), tokens.size());
  const char* lo = reinterpret_cast<const char*>(bytes.data());
  for (size_t i = 0; i < tokens.size(); i += 997) {
    EXPECT_EQ((*arr)[i], tokens[i]);
    EXPECT_GE((*arr)[i].data(), lo);
    EXPECT_LE((*arr)[i].data() + (*arr)[i].size(), lo + bytes.size());
  }
  EXPECT_EQ(arr->back(), tokens.back());
}

// ---------------------------------------------------------------------------
// Tensor infos (HANDCRAFTED_TENSORS_*)

TEST(GgufTensors, NameLimits) {
  GgufTestFile f;
  f.tensors = {F32Tensor(std::string(64, 'n'), {4})};
  ExpectError(f.Build(), "limit");
  f.tensors = {F32Tensor(std::string(63, 'n'), {4})};
  ExpectOk(f.Build());
  f.tensors = {F32Tensor("", {4})};
  ExpectError(f.Build(), "empty name");
}

TEST(GgufTensors, BadNDims) {
  for (uint32_t n : {0u, 5u, 0xffffffffu}) {
    GgufTestFile f;
    f.tensors = {F32Tensor("t", {4})};
    f.tensors[0].n_dims = n;
    ExpectError(f.Build(), "dimensions");
  }
}

TEST(GgufTensors, NegativeDimension) {
  GgufTestFile f;
  f.tensors = {F32Tensor("t", {4, 2})};
  f.tensors[0].ne = {-1, -1};
  ExpectError(f.Build(), "negative dimension");
}

TEST(GgufTensors, ZeroDimensionIsValid) {
  GgufTestFile f;
  f.tensors = {F32Tensor("a", {4}), GgufTestTensor{.name = "empty", .type = 0, .ne = {4, 0}}, F32Tensor("b", {2})};
  auto g = ExpectOk(f.Build());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->FindTensor("empty")->n_bytes, 0u);
  EXPECT_EQ(g->FindTensor("empty")->num_elements(), 0);
}

TEST(GgufTensors, ElementCountOverflow) {
  GgufTestFile f;
  const int64_t big = 4 * int64_t{INT32_MAX};
  f.tensors = {GgufTestTensor{.name = "t", .type = 0, .ne = {big, big}}};
  ExpectError(f.Build(), "overflows");
  f.tensors = {GgufTestTensor{.name = "t", .type = 0, .ne = {INT64_MAX, 2}}};
  ExpectError(f.Build(), "overflows");
}

TEST(GgufTensors, ByteSizeOverflow) {
  // I64 (8 bytes) with 2^62 elements: the element count fits, the bytes do not.
  GgufTestFile f;
  f.tensors = {GgufTestTensor{.name = "t", .type = 27, .ne = {int64_t{1} << 31, int64_t{1} << 31}}};
  ExpectError(f.Build(), "size in bytes overflows");
}

TEST(GgufTensors, BadType) {
  for (uint32_t t : {42u, 1000u, 0xffffffffu}) {
    GgufTestFile f;
    f.tensors = {F32Tensor("t", {32})};
    f.tensors[0].type = t;
    ExpectError(f.Build(), "unknown ggml type");
  }
  GgufTestFile removed;
  removed.tensors = {F32Tensor("t", {32})};
  removed.tensors[0].type = 4;
  ExpectError(removed.Build(), "Q4_2");
}

TEST(GgufTensors, RowNotMultipleOfBlock) {
  GgufTestFile f;
  f.tensors = {GgufTestTensor{.name = "q", .type = 2, .ne = {33, 2}, .data = PatternBytes(100)}};
  ExpectError(f.Build(), "not a multiple of the block size 32");
}

TEST(GgufTensors, BadOffsets) {
  {  // -1: not aligned
    GgufTestFile f;
    f.tensors = {F32Tensor("t", {8})};
    f.tensors[0].offset = UINT64_MAX;
    ExpectError(f.Build(), "alignment");
  }
  {  // aligned but far beyond the file
    GgufTestFile f;
    f.tensors = {F32Tensor("t", {8})};
    f.tensors[0].offset = uint64_t{1} << 62;
    ExpectError(f.Build(), "data section");
  }
  {  // not a multiple of the alignment
    GgufTestFile f;
    f.tensors = {F32Tensor("t", {8})};
    f.tensors[0].offset = 16;
    ExpectError(f.Build(), "not a multiple of the alignment 32");
  }
  {  // out of order
    GgufTestFile f;
    f.tensors = {F32Tensor("a", {8}), F32Tensor("b", {8})};
    f.tensors[0].offset = 32;
    f.tensors[1].offset = 0;
    ExpectError(f.Build(), "overlaps or precedes tensor 'a'");
  }
  {  // overlapping
    GgufTestFile f;
    f.tensors = {F32Tensor("a", {16}), F32Tensor("b", {8})};
    f.tensors[1].offset = 32;
    ExpectError(f.Build(), "overlaps");
  }
  {  // gaps are allowed
    GgufTestFile f;
    f.tensors = {F32Tensor("a", {8}), F32Tensor("b", {8})};
    f.tensors[1].offset = 128;
    auto g = ExpectOk(f.Build());
    ASSERT_TRUE(g);
    EXPECT_EQ(g->FindTensor("b")->data[1], PatternBytes(32)[1]);
  }
}

TEST(GgufTensors, DuplicateName) {
  GgufTestFile f;
  f.tensors = {F32Tensor("my_tensor", {8}), F32Tensor("other", {8}), F32Tensor("my_tensor", {8})};
  ExpectError(f.Build(), "duplicate tensor name 'my_tensor'");
}

TEST(GgufTensors, AlignmentKeyBadWithTensors) {
  GgufTestFile f;
  f.kvs = {KvScalar<uint32_t>("general.alignment", kGU32, 13)};
  f.alignment = 13;
  f.tensors = {F32Tensor("t", {8})};
  ExpectError(f.Build(), "power of two");
}

TEST(GgufTensors, InconsistentAlignment) {
  // Offsets laid out for alignment 1 in a file of the default alignment 32.
  GgufTestFile f;
  f.alignment = 1;
  f.tensors = {F32Tensor("a", {3}), F32Tensor("b", {3})};
  ExpectError(f.Build(), "not a multiple of the alignment 32");
}

// ---------------------------------------------------------------------------
// Data section (HANDCRAFTED_DATA_*)

TEST(GgufData, NotEnoughData) {
  GgufTestFile f;
  f.tensors = {F32Tensor("a", {8}), F32Tensor("b", {8})};  // b's 32 bytes end the file exactly
  ExpectOk(f.Build());
  f.trim_end = 1;
  ExpectError(f.Build(), "tensor 'b' needs bytes [32, 32 + 32)");
}

TEST(GgufData, DataSectionStartBeyondFile) {
  GgufTestFile f;
  f.tensors = {GgufTestTensor{.name = "t", .type = 0, .ne = {0}}};
  auto bytes = f.Build();
  // Cut the padding that precedes the (empty) data section.
  const size_t header_end = bytes.size();
  bytes.resize(header_end - 1);
  ExpectError(bytes, "");
}

TEST(GgufData, MemSizeOverflow) {
  GgufTestFile f;
  f.tensors = {GgufTestTensor{.name = "a", .type = 24, .ne = {0x7FFFFFFFFFFFFFC0}, .data = PatternBytes(32)},
               GgufTestTensor{.name = "b", .type = 24, .ne = {0x7FFFFFFFFFFFFFC0}}};
  f.tensors[1].offset = 0x7FFFFFFFFFFFFFC0;
  ExpectError(f.Build(), "data section");
}

// llama.cpp's HANDCRAFTED_*_SUCCESS: random tensors of every ggml type with
// a known type size, 1..4 dims, data bytes (offset + j) % 256.
TEST(GgufData, RandomTensorsOfEveryTypeParse) {
  std::random_device rd;
  const uint32_t seed = rd();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (uint32_t alignment : {32u, 1u, 64u}) {
    GgufTestFile f;
    f.alignment = alignment;
    if (alignment != 32) f.kvs = {KvScalar<uint32_t>("general.alignment", kGU32, alignment)};
    struct Want {
      std::string name;
      uint32_t type;
      std::vector<int64_t> ne;
    };
    std::vector<Want> want;
    for (int i = 0; i < 100; ++i) {
      const uint32_t type = rng() % 42;
      const GgmlTypeInfo* info = GgmlTypeInfoFor(type);
      if (info == nullptr) continue;
      const int n_dims = 1 + rng() % 4;
      std::vector<int64_t> ne(n_dims, 1);
      ne[0] = (1 + rng() % 10) * info->block_elems;
      for (int d = 1; d < n_dims; ++d) ne[d] = 1 + rng() % 4;
      int64_t n = 1;
      for (int64_t d : ne) n *= d;
      const size_t bytes = n / info->block_elems * info->block_bytes;
      const std::string name = "my_tensor_" + std::to_string(i);
      want.push_back({name, type, ne});
      f.tensors.push_back(GgufTestTensor{.name = name, .type = type, .ne = ne, .data = std::vector<uint8_t>(bytes)});
    }
    // Data bytes as llama.cpp fills them: (offset within the data section) % 256.
    uint64_t off = 0;
    for (auto& t : f.tensors) {
      for (size_t j = 0; j < t.data.size(); ++j) t.data[j] = static_cast<uint8_t>((off + j) % 256);
      off = (off + t.data.size() + alignment - 1) / alignment * alignment;
    }
    auto g = ExpectOk(f.Build());
    ASSERT_TRUE(g);
    ASSERT_EQ(g->tensors().size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const GgufTensorInfo& t = g->tensors()[i];
      EXPECT_EQ(t.name, want[i].name);
      EXPECT_EQ(t.ggml_type, want[i].type);
      EXPECT_EQ(t.type->id, want[i].type);
      EXPECT_EQ(t.n_dims, want[i].ne.size());
      std::vector<int64_t> shape(want[i].ne.rbegin(), want[i].ne.rend());
      EXPECT_EQ(t.shape(), shape);
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.data.size(), t.n_bytes);
      for (size_t j = 0; j < t.data.size(); j += 13) EXPECT_EQ(t.data[j], (t.offset + j) % 256);
      EXPECT_EQ(g->FindTensor(want[i].name), &t);
    }
  }
}

TEST(GgufTypes, TableMatchesDTypes) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K,
                  DType::kQ6_K}) {
    auto id = GgmlTypeForDType(d);
    ASSERT_TRUE(id.has_value()) << DTypeName(d);
    const GgmlTypeInfo* info = GgmlTypeInfoFor(*id);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, d);
    EXPECT_EQ(info->name, DTypeName(d));
    EXPECT_EQ(info->block_elems, DTypeBlockElems(d));
    EXPECT_EQ(info->block_bytes, DTypeBlockBytes(d));
  }
  EXPECT_EQ(*GgmlTypeForDType(DType::kQ4_K), ggml_type::kQ4_K);
  EXPECT_EQ(*GgmlTypeForDType(DType::kBF16), ggml_type::kBF16);
  EXPECT_EQ(GgmlTypeInfoFor(13)->name, "Q5_K");
  EXPECT_EQ(GgmlTypeInfoFor(13)->dtype, std::nullopt);
  EXPECT_EQ(GgmlTypeInfoFor(4), nullptr);
}

// ---------------------------------------------------------------------------
// Robustness: random mutations of a valid file never crash and never yield
// views outside the buffer (a cheap, always-on cousin of the fuzz target).

TEST(GgufRobustness, RandomMutationsAreSafe) {
  GgufTestFile base;
  base.kvs = {KvString("general.architecture", "llama"), KvScalar<uint32_t>("llama.block_count", kGU32, 2),
              KvStringArray("tokenizer.ggml.tokens", {"a", "b", "cc"}),
              KvArray("tokenizer.ggml.scores", kGF32, std::vector<float>{0.5f, 1.f, 2.f}),
              Kv("nested", kGArray, NestedArrayValue(3))};
  base.tensors = {F32Tensor("a", {8, 2}), GgufTestTensor{.name = "q", .type = 2, .ne = {32, 2},
                                                         .data = PatternBytes(36)},
                  F32Tensor("c", {3})};
  const std::vector<uint8_t> valid = base.Build();
  ASSERT_TRUE(ParseBytes(valid).ok());
  std::random_device rd;
  const uint32_t seed = rd();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = valid;
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] = static_cast<uint8_t>(rng()); break;
        case 1: bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 2:  // an extreme 64-bit value
          if (at + 8 <= bytes.size()) {
            const uint64_t v = (rng() % 2) ? UINT64_MAX : (uint64_t{1} << (rng() % 64));
            std::memcpy(bytes.data() + at, &v, 8);
          }
          break;
        case 3: bytes.resize(at); break;
      }
      if (bytes.empty()) break;
    }
    auto r = GgufFile::Parse(bytes, "mutated");
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++parsed;
    for (const auto& t : (*r)->tensors()) {
      ASSERT_GE(t.data.data(), bytes.data());
      ASSERT_LE(t.data.data() + t.data.size(), bytes.data() + bytes.size());
    }
    for (const auto& kv : (*r)->metadata()) {
      if (kv.value.type() == GgufValueType::kArray && kv.value.element_type() == GgufValueType::kString) {
        auto arr = (*r)->GetStringArray(kv.key);
        ASSERT_TRUE(arr.ok());
        for (auto s : *arr) {
          ASSERT_GE(reinterpret_cast<const uint8_t*>(s.data()), bytes.data());
          ASSERT_LE(reinterpret_cast<const uint8_t*>(s.data() + s.size()), bytes.data() + bytes.size());
        }
      }
    }
  }
  EXPECT_GT(parsed, 0);
}

// ---------------------------------------------------------------------------
// Open(): the memory-mapped path.

TEST(GgufOpen, MapsAFileAndRefusesMissingOnes) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("lserve_gguf_" + std::to_string(std::random_device()()));
  std::filesystem::create_directories(dir);
  GgufTestFile f;
  f.kvs = {KvString("general.name", "x")};
  f.tensors = {F32Tensor("t", {4})};
  const auto bytes = f.Build();
  const std::string path = (dir / "m.gguf").string();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  auto g = GgufFile::Open(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->path(), path);
  EXPECT_EQ((*g)->file_size(), bytes.size());
  EXPECT_EQ(*(*g)->GetString("general.name"), "x");
  EXPECT_EQ((*g)->FindTensor("t")->data[3], bytes[(*g)->data_offset() + 3]);

  auto missing = GgufFile::Open((dir / "missing.gguf").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto directory = GgufFile::Open(dir.string());
  EXPECT_FALSE(directory.ok());
  {
    std::ofstream out((dir / "bad.gguf").string(), std::ios::binary);
    out << "GGML this is not";
  }
  auto bad = GgufFile::Open((dir / "bad.gguf").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.gguf"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lserve
