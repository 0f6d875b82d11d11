// core/npy.h: round trips, files numpy wrote, and every malformed header
// refused with a Status.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/npy.h"
#include "model_test_util.h"

namespace lserve {
namespace {

std::vector<uint8_t> WithHeader(const std::string& dict, size_t data_bytes, uint8_t major = 1) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  const size_t len = dict.size();
  out.push_back(static_cast<uint8_t>(len));
  out.push_back(static_cast<uint8_t>(len >> 8));
  if (major >= 2) {
    out.push_back(static_cast<uint8_t>(len >> 16));
    out.push_back(static_cast<uint8_t>(len >> 24));
  }
  out.insert(out.end(), dict.begin(), dict.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

TEST(Npy, RoundTripsF32AndI32) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-100.0f, 100.0f);
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{}, {0}, {5}, {3, 7}, {2, 3, 4}, {1, 0, 3}}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> f(n);
    std::vector<int32_t> i(n);
    for (int64_t k = 0; k < n; ++k) {
      f[k] = dist(rng);
      i[k] = static_cast<int32_t>(rng());
    }
    auto fb = EncodeNpyF32(f, shape);
    ASSERT_TRUE(fb.ok());
    auto fr = ParseNpyF32(*fb);
    ASSERT_TRUE(fr.ok()) << fr.status().ToString();
    EXPECT_EQ(fr->shape, shape);
    EXPECT_EQ(fr->data, f);
    auto ib = EncodeNpyI32(i, shape);
    ASSERT_TRUE(ib.ok());
    auto ir = ParseNpyI32(*ib);
    ASSERT_TRUE(ir.ok());
    EXPECT_EQ(ir->shape, shape);
    EXPECT_EQ(ir->data, i);
    // The data starts at a multiple of 64 bytes, as numpy writes it.
    EXPECT_EQ((fb->size() - f.size() * 4) % 64, 0u);
  }
}

TEST(Npy, WritesTheHeaderNumpyWrites) {
  const std::vector<float> v = {1.0f, 2.0f};
  auto b = EncodeNpyF32(v, std::vector<int64_t>{2});
  ASSERT_TRUE(b.ok());
  const std::string header(b->begin() + 10, b->end() - 8);  // the two floats follow the header
  EXPECT_EQ(b->size() - 8, 128u);
  EXPECT_EQ(header.substr(0, header.find('}') + 1), "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }");
  EXPECT_EQ(header.back(), '\n');
  auto b2 = EncodeNpyI32(std::vector<int32_t>(6), std::vector<int64_t>{2, 3});
  ASSERT_TRUE(b2.ok());
  EXPECT_NE(std::string(b2->begin(), b2->end()).find("'shape': (2, 3), }"), std::string::npos);
}

TEST(Npy, ReadsFilesNumpyWrote) {
  auto a = ReadNpyF32(testing::SourcePath("tests/fixtures/demo/logits_short.npy"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{11, 49152}));
  EXPECT_EQ(a->data.size(), 11u * 49152u);
  auto b = ReadNpyF32(testing::SourcePath("tests/fixtures/demo/logits_france_last.npy"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->shape, (std::vector<int64_t>{49152}));
  // A f32 file is not an i32 file.
  EXPECT_EQ(ReadNpyI32(testing::SourcePath("tests/fixtures/demo/logits_france_last.npy")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Npy, WritesFilesAndReadsThemBack) {
  const std::string path = ::testing::TempDir() + "/npy_roundtrip.npy";
  const std::vector<float> v = {0.5f, -1.25f, 3.0f, 4.0f};
  ASSERT_TRUE(WriteNpyF32(path, v, std::vector<int64_t>{2, 2}).ok());
  auto r = ReadNpyF32(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data, v);
  std::remove(path.c_str());
  EXPECT_EQ(ReadNpyF32(path).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(WriteNpyF32("/nonexistent-dir/x.npy", v, std::vector<int64_t>{4}).ok());
}

TEST(Npy, RefusesMalformedFiles) {
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
  EXPECT_TRUE(ParseNpyF32(WithHeader(ok, 24)).ok());
  EXPECT_TRUE(ParseNpyF32(WithHeader(ok, 24, 2)).ok());
  EXPECT_TRUE(ParseNpyF32(WithHeader("{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"<f4\"}", 24)).ok());

  struct Case {
    std::vector<uint8_t> bytes;
    const char* why;
  };
  std::vector<uint8_t> bad_magic = WithHeader(ok, 24);
  bad_magic[1] = 'X';
  std::vector<uint8_t> long_len = WithHeader(ok, 0);
  long_len[8] = 0xff;
  long_len[9] = 0xff;
  const std::vector<Case> cases = {
      {{}, "empty"},
      {{0x93, 'N', 'U'}, "truncated magic"},
      {bad_magic, "bad magic"},
      {WithHeader(ok, 24, 4), "version 4"},
      {long_len, "header longer than the file"},
      {WithHeader(ok, 20), "data shorter than the shape"},
      {WithHeader(ok, 28), "data longer than the shape"},
      {WithHeader("{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", 24), "big endian"},
      {WithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 24), "f64"},
      {WithHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24), "fortran order"},
      {WithHeader("{'descr': '<f4', 'shape': (6,), }", 24), "missing key"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", 24), "extra key"},
      {WithHeader("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", 24), "repeated key"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", 24), "negative dim"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (6.0,), }", 24), "float dim"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0), "overflow"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0), "huge dim"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } x", 24), "trailing bytes"},
      {WithHeader("['descr', '<f4']", 24), "not a dict"},
      {WithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (6,", 24), "unterminated"},
      {WithHeader("{'descr': '<f4', 'fortran_order': maybe, 'shape': (6,), }", 24), "bad bool"},
  };
  for (const Case& c : cases) {
    auto r = ParseNpyF32(c.bytes);
    EXPECT_FALSE(r.ok()) << c.why;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.why;
    }
  }
}

TEST(Npy, EncodeRefusesInconsistentShapes) {
  const std::vector<float> v(6);
  EXPECT_FALSE(EncodeNpyF32(v, std::vector<int64_t>{4}).ok());
  EXPECT_FALSE(EncodeNpyF32(v, std::vector<int64_t>{-2, -3}).ok());
  EXPECT_TRUE(EncodeNpyF32(v, std::vector<int64_t>{3, 2}).ok());
}

}  // namespace
}  // namespace lserve
