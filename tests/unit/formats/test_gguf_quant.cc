// Dequantization: bit-exact against gguf.quants (the Python mirror of ggml's
// dequantize_row_*), through the goldens of tools/fixtures/make_gguf_fixtures.py,
// and metadata written by the Python GGUFWriter.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_quant.h"

namespace lserve {
namespace {

const std::string kFixtures = LSERVE_SOURCE_DIR "/tests/fixtures/gguf/";

std::shared_ptr<const GgufFile> OpenFixture(const std::string& name) {
  auto r = GgufFile::Open(kFixtures + name);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

std::vector<float> F32Data(const GgufTensorInfo& t) {
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

// Bit equality, except that any NaN matches any NaN (numpy and ggml may
// quiet a signalling NaN differently; the scale bytes are random).
::testing::AssertionResult SameBits(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) && std::isnan(want[i])) continue;
    if (BitsFromF32(got[i]) != BitsFromF32(want[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << got[i] << " vs " << want[i];
  }
  return ::testing::AssertionSuccess();
}

TEST(GgufQuant, GoldensMatchBitExactly) {
  auto g = OpenFixture("quant_golden.gguf");
  ASSERT_TRUE(g);
  int checked = 0;
  std::set<DType> types;
  for (const GgufTensorInfo& t : g->tensors()) {
    if (t.name.starts_with("expected.")) continue;
    SCOPED_TRACE(std::string(t.name));
    const GgufTensorInfo* want = g->FindTensor("expected." + std::string(t.name));
    ASSERT_NE(want, nullptr);
    ASSERT_TRUE(t.type->dtype.has_value());
    const DType dtype = *t.type->dtype;
    types.insert(dtype);
    const std::vector<float> expected = F32Data(*want);
    ASSERT_EQ(want->shape(), t.shape());

    // Whole tensor.
    TensorInfo info{.name = std::string(t.name), .dtype = dtype, .shape = t.shape(), .data = t.data, .file = "quant_golden.gguf"};
    auto all = DequantizeTensor(info);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_TRUE(SameBits(*all, expected));

    // Row by row, from an unaligned copy of the bytes.
    const int64_t cols = t.ne[0];
    const int64_t rows = t.num_elements() / cols;
    const uint64_t row_bytes = *DTypeBytesFor(dtype, cols);
    std::vector<uint8_t> shifted(row_bytes + 1);
    std::vector<float> row(cols), got;
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(shifted.data() + 1, t.data.data() + r * row_bytes, row_bytes);
      ASSERT_TRUE(DequantizeRow(dtype, shifted.data() + 1, cols, row.data()).ok());
      got.insert(got.end(), row.begin(), row.end());
    }
    EXPECT_TRUE(SameBits(got, expected));
    ++checked;
  }
  EXPECT_EQ(types.size(), 8u);
  EXPECT_GE(checked, 8 * 2);
}

TEST(GgufQuant, RejectsWhatItCannotDo) {
  std::vector<uint8_t> src(1024);
  std::vector<float> dst(512);
  for (DType d : {DType::kF64, DType::kI32, DType::kI8, DType::kU8, DType::kBool}) {
    Status s = DequantizeRow(d, src.data(), 8, dst.data());
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << DTypeName(d);
  }
  EXPECT_EQ(DequantizeRow(DType::kQ4_0, src.data(), 31, dst.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DequantizeRow(DType::kQ4_K, src.data(), 128, dst.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(DequantizeRow(DType::kQ4_K, src.data(), 256, dst.data()).ok());
  EXPECT_TRUE(DequantizeRow(DType::kF32, src.data(), 0, dst.data()).ok());

  TensorInfo bad{.name = "w", .dtype = DType::kQ8_0, .shape = {2, 32}, .data = {src.data(), 67}, .file = ""};
  auto r = DequantizeTensor(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'w'"), std::string::npos);
  TensorInfo unsupported{.name = "i", .dtype = DType::kI32, .shape = {4}, .data = {src.data(), 16}, .file = ""};
  EXPECT_EQ(DequantizeTensor(unsupported).status().code(), StatusCode::kUnimplemented);
}

// A hand-computed block of each simple type, independent of the goldens.
TEST(GgufQuant, HandBuiltBlocks) {
  std::vector<float> out(32);
  {  // Q8_0: d = 0.5, q = -16..15
    std::vector<uint8_t> b(34);
    const uint16_t d = F32ToF16(0.5f);
    std::memcpy(b.data(), &d, 2);
    for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
    ASSERT_TRUE(DequantizeRow(DType::kQ8_0, b.data(), 32, out.data()).ok());
    for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], (j - 16) * 0.5f);
  }
  {  // Q4_0: d = 2, byte j = (lo = j % 16, hi = 15 - j % 16)
    std::vector<uint8_t> b(18);
    const uint16_t d = F32ToF16(2.0f);
    std::memcpy(b.data(), &d, 2);
    for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    ASSERT_TRUE(DequantizeRow(DType::kQ4_0, b.data(), 32, out.data()).ok());
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(out[j], (j - 8) * 2.0f);
      EXPECT_EQ(out[j + 16], (15 - j - 8) * 2.0f);
    }
  }
  {  // Q4_1: d = 0.25, m = -1
    std::vector<uint8_t> b(20);
    const uint16_t d = F32ToF16(0.25f), m = F32ToF16(-1.0f);
    std::memcpy(b.data(), &d, 2);
    std::memcpy(b.data() + 2, &m, 2);
    for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (3 << 4));
    ASSERT_TRUE(DequantizeRow(DType::kQ4_1, b.data(), 32, out.data()).ok());
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(out[j], j * 0.25f - 1.0f);
      EXPECT_EQ(out[j + 16], 3 * 0.25f - 1.0f);
    }
  }
}

// Metadata written by gguf-py's GGUFWriter: the constants of METADATA /
// ARRAYS / NESTED in make_gguf_fixtures.py.
TEST(GgufQuant, PythonWrittenMetadataOfEveryType) {
  auto g = OpenFixture("quant_golden.gguf");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(*g->GetString("general.architecture"), "test");
  EXPECT_EQ(*g->GetUInt("test.u8"), 200u);
  EXPECT_EQ(*g->GetInt("test.i8"), -100);
  EXPECT_EQ(*g->GetUInt("test.u16"), 60000u);
  EXPECT_EQ(*g->GetInt("test.i16"), -30000);
  EXPECT_EQ(*g->GetUInt("test.u32"), 4000000000u);
  EXPECT_EQ(*g->GetInt("test.i32"), -2000000000);
  EXPECT_EQ(*g->GetFloat("test.f32"), static_cast<double>(0.1f));
  EXPECT_EQ(*g->GetBool("test.bool"), true);
  EXPECT_EQ(*g->GetString("test.string"), "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80");
  EXPECT_EQ(*g->GetUInt("test.u64"), 18000000000000000000ull);
  EXPECT_EQ(*g->GetInt("test.i64"), -9000000000000000000ll);
  EXPECT_EQ(*g->GetFloat("test.f64"), 0.1);
  EXPECT_EQ(g->Find("test.u8")->type(), GgufValueType::kU8);
  EXPECT_EQ(g->Find("test.f64")->type(), GgufValueType::kF64);

  EXPECT_EQ(*g->GetI32Array("test.arr.i32"), (std::vector<int32_t>{1, -2, 3, INT32_MIN, INT32_MAX}));
  EXPECT_EQ(*g->GetF32Array("test.arr.f32"), (std::vector<float>{0.5f, -1.25f, 3.0e38f}));
  EXPECT_EQ(*g->GetIntArray("test.arr.u8"), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(*g->GetBoolArray("test.arr.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(*g->GetFloatArray("test.arr.f64"), (std::vector<double>{0.1, -2.5}));
  const GgufValue* u64 = g->Find("test.arr.u64");
  EXPECT_EQ(u64->UIntBitsAt(1), UINT64_MAX);
  EXPECT_FALSE(g->GetIntArray("test.arr.u64").ok());
  auto strs = g->GetStringArray("test.arr.string");
  ASSERT_TRUE(strs.ok());
  ASSERT_EQ(strs->size(), 4u);
  EXPECT_EQ((*strs)[0], "a");
  EXPECT_EQ((*strs)[1], "");
  EXPECT_EQ((*strs)[2], "\xc3\xa9\xc3\xa9");
  EXPECT_EQ((*strs)[3], "<|im_end|>");
  const GgufValue* nested = g->Find("test.arr.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->element_type(), GgufValueType::kArray);
  ASSERT_EQ(nested->array_size(), 3u);
  const std::vector<std::vector<int64_t>> want = {{1, 2, 3}, {4}, {5, 6}};
  for (uint64_t i = 0; i < 3; ++i) {
    const GgufValue& inner = nested->ArrayAt(*g, i);
    ASSERT_EQ(inner.array_size(), want[i].size());
    for (uint64_t j = 0; j < inner.array_size(); ++j) EXPECT_EQ(inner.IntAt(j), want[i][j]);
  }
}

}  // namespace
}  // namespace lserve
