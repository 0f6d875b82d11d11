// safetensors: valid files read in place; every corruption of RELIABILITY.md
// A1-A4 refused with a message that names the tensor and the defect.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/safetensors.h"
#include "safetensors_test_util.h"

namespace lserve {
namespace {

using testing::RandomTensor;
using testing::StBuild;
using testing::StRawFile;
using testing::StTempFolder;
using testing::StTensor;
using testing::StWriteFile;

Result<SafetensorsHeader> Parse(const std::vector<uint8_t>& bytes) { return ParseSafetensorsHeader(bytes); }

Result<SafetensorsHeader> ParseHeaderText(const std::string& header, size_t data_bytes) {
  return Parse(StRawFile(header, std::vector<uint8_t>(data_bytes, 0)));
}

void ExpectError(const Status& s, std::initializer_list<std::string> needles) {
  ASSERT_FALSE(s.ok()) << "accepted, expected an error mentioning " << *needles.begin();
  for (const std::string& n : needles)
    EXPECT_NE(s.message().find(n), std::string::npos) << s.message() << "\n  lacks: " << n;
}

std::mt19937 Rng() { return std::mt19937(std::random_device{}()); }

// ---- valid files --------------------------------------------------------------

TEST(Safetensors, RoundTripsF32F16Bf16InPlace) {
  std::mt19937 rng = Rng();
  const std::vector<StTensor> tensors = {
      RandomTensor(rng, "model.embed_tokens.weight", "BF16", {7, 5}),
      RandomTensor(rng, "a.f32", "F32", {3, 1, 4}),
      RandomTensor(rng, "b.f16", "F16", {9}),
      RandomTensor(rng, "scalar", "F32", {}),
      RandomTensor(rng, "empty", "F16", {0, 12}),
      RandomTensor(rng, "position_ids", "I64", {1, 6}),
      RandomTensor(rng, "mask", "BOOL", {3}),
      RandomTensor(rng, "f64", "F64", {2}),
  };
  StTempFolder dir("st_roundtrip");
  StWriteFile(dir / "m.safetensors", StBuild(tensors, {{"format", "pt"}, {"note", "héllo"}}));
  Result<SafetensorsFile> file = SafetensorsFile::Open(dir / "m.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->metadata().at("note"), "héllo");
  ASSERT_EQ(file->tensors().size(), tensors.size());
  const uint8_t* map_begin = file->mapping()->data();
  const uint8_t* map_end = map_begin + file->mapping()->size();
  for (const StTensor& want : tensors) {
    SCOPED_TRACE(want.name);
    const TensorInfo* t = file->Find(want.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(DTypeName(t->dtype), want.dtype);
    EXPECT_EQ(t->shape, want.shape);
    EXPECT_EQ(t->file, dir / "m.safetensors");
    ASSERT_EQ(t->data.size(), want.bytes.size());
    EXPECT_TRUE(std::equal(t->data.begin(), t->data.end(), want.bytes.begin()));
    // Viewed in place: the bytes lie inside the mapping, nothing is copied.
    EXPECT_GE(t->data.data(), map_begin);
    EXPECT_LE(t->data.data() + t->data.size(), map_end);
  }
  EXPECT_EQ(file->Find("absent"), nullptr);

  // The mapping outlives the SafetensorsFile through copies of the tensors' owner.
  std::shared_ptr<const MappedFile> keep = file->mapping();
  std::vector<TensorInfo> infos = file->tensors();
  file = Status(StatusCode::kInternal, "dropped");
  EXPECT_EQ(infos[0].data[0], infos[0].data[0]);
  EXPECT_EQ(keep.use_count(), 1);
}

TEST(Safetensors, ValuesDecodeAsWritten) {
  const float values[] = {1.5f, -2.25f, 3.0e-5f, 65504.0f};
  std::vector<uint8_t> f32(sizeof(values)), f16, bf16;
  std::memcpy(f32.data(), values, sizeof(values));
  for (float v : values) {
    const uint16_t h = F32ToF16(v), b = F32ToBF16(v);
    f16.push_back(static_cast<uint8_t>(h));
    f16.push_back(static_cast<uint8_t>(h >> 8));
    bf16.push_back(static_cast<uint8_t>(b));
    bf16.push_back(static_cast<uint8_t>(b >> 8));
  }
  StTempFolder dir("st_values");
  StWriteFile(dir / "v.safetensors", StBuild({{"x", "F32", {4}, f32}, {"h", "F16", {2, 2}, f16}, {"b", "BF16", {4}, bf16}}));
  SafetensorsFile file = *SafetensorsFile::Open(dir / "v.safetensors");
  for (int i = 0; i < 4; ++i) {
    float x;
    std::memcpy(&x, file.Find("x")->data.data() + 4 * i, 4);
    EXPECT_EQ(x, values[i]);
    const uint8_t* h = file.Find("h")->data.data() + 2 * i;
    EXPECT_EQ(F16ToF32(static_cast<uint16_t>(h[0] | h[1] << 8)), F16ToF32(F32ToF16(values[i])));
    const uint8_t* b = file.Find("b")->data.data() + 2 * i;
    EXPECT_EQ(BF16ToF32(static_cast<uint16_t>(b[0] | b[1] << 8)), BF16ToF32(F32ToBF16(values[i])));
  }
}

TEST(Safetensors, WhitespacePaddedHeaderAndEntryOrderAreAccepted) {
  // Trailing spaces (the writers' 8-byte padding), also tabs and newlines,
  // which serde_json skips as well.
  for (const char* pad : {"", " ", "       ", "\n\t \r\n"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(pad)));
    Result<SafetensorsHeader> h =
        ParseHeaderText(std::string(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})") + pad, 8);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(h->tensors.size(), 1u);
  }
  // Entries listed out of offset order are sorted, as the crate sorts them.
  Result<SafetensorsHeader> h = ParseHeaderText(
      R"({"second":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
      R"("first":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":null})",
      8);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->tensors[0].name, "first");
  EXPECT_EQ(h->tensors[1].name, "second");
  // Unknown fields of an entry are ignored (serde ignores them), even nested.
  h = ParseHeaderText(R"({"t":{"extra":{"deep":[[1],{"x":null}]},"dtype":"U8","shape":[3],"data_offsets":[0,3],"z":1}})", 3);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  // No tensors at all.
  EXPECT_TRUE(ParseHeaderText("{}", 0).ok());
  EXPECT_TRUE(ParseHeaderText(R"({"__metadata__":{}})", 0).ok());
}

// ---- A1: header length ----------------------------------------------------------

TEST(SafetensorsA1, FileShorterThanTheLengthField) {
  for (size_t n = 0; n < 8; ++n) {
    std::vector<uint8_t> bytes(n, 0);
    ExpectError(Parse(bytes).status(), {"header too small"});
  }
}

TEST(SafetensorsA1, LengthFieldTooLargeOrBeyondTheFile) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::vector<uint8_t> data(4, 0);
  for (uint64_t n : {uint64_t{1} << 60, ~uint64_t{0}, uint64_t{100'000'001}, uint64_t{1} << 32}) {
    SCOPED_TRACE(n);
    ExpectError(Parse(StRawFile(header, data, n)).status(), {"header too large"});
  }
  const uint64_t total = 8 + header.size() + data.size();
  ExpectError(Parse(StRawFile(header, data, total - 8 + 1)).status(), {"invalid header length"});
  ExpectError(Parse(StRawFile(header, data, 100'000'000)).status(), {"invalid header length"});
}

long PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(SafetensorsA1, HugeLengthsCostNoMemory) {
  // A 64 MiB sparse file that claims a 2^60-byte header, then one claiming
  // 60 MB (under the cap, within the file): neither reads nor allocates the
  // claimed size (the header is checked in place; the second is refused at
  // its first byte).
  StTempFolder dir("st_sparse");
  const std::string path = dir / "big.safetensors";
  const long before = PeakRssKb();
  for (uint64_t n : {uint64_t{1} << 60, uint64_t{60'000'000}}) {
    std::vector<uint8_t> head = StRawFile("", {}, n);
    StWriteFile(path, head);
    ASSERT_EQ(::truncate(path.c_str(), 64 << 20), 0);
    Result<SafetensorsFile> f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find(path), std::string::npos);
  }
  EXPECT_LT(PeakRssKb() - before, 32 * 1024);
}

// ---- A2: header text ---------------------------------------------------------------

TEST(SafetensorsA2, HeaderMustStartWithBrace) {
  for (const char* header : {R"( {"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", "[]", "\"x\"", "",
                             "\n{}", "null"}) {
    SCOPED_TRACE(header);
    ExpectError(ParseHeaderText(header, 0).status(), {"does not start with '{'"});
  }
}

TEST(SafetensorsA2, NonUtf8InvalidJsonAndTrailingGarbage) {
  ExpectError(ParseHeaderText("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0).status(),
              {"UTF-8"});
  ExpectError(ParseHeaderText("{\"\xed\xa0\x80\":1}", 0).status(), {"UTF-8"});  // a surrogate
  for (const char* header : {"{", R"({"a":)", R"({"a":{"dtype":"F32",}})", R"({"a" {}})", "{}}", "{} x",
                             R"({'a':1})", R"({"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,0]}})",
                             "{/*c*/}"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(header)));
    ExpectError(ParseHeaderText(header, 0).status(), {"invalid JSON"});
  }
  // NUL padding is not whitespace, and nothing after a NUL may be ignored.
  ExpectError(ParseHeaderText(std::string("{}") + std::string(6, '\0'), 0).status(), {"invalid JSON", "NUL"});
  ExpectError(ParseHeaderText(std::string("{}") + '\0' + R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4)
                  .status(),
              {"invalid JSON", "NUL"});
}

TEST(SafetensorsA2, DuplicateKeys) {
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              8)
                  .status(),
              {"duplicate key", "tensor 'w'"});
  ExpectError(ParseHeaderText(R"({"__metadata__":{"a":"1"},"__metadata__":{"b":"2"}})", 0).status(),
              {"duplicate key", "__metadata__"});
  ExpectError(ParseHeaderText(R"({"__metadata__":{"a":"1","a":"2"}})", 0).status(), {"duplicate key", "'a'"});
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4).status(),
              {"duplicate key", "tensor 'w'", "'dtype'"});
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}})", 4).status(),
              {"duplicate key", "'shape'"});
}

TEST(SafetensorsA2, MetadataMustMapStringsToStrings) {
  for (const char* meta : {R"({"a":1})", R"({"a":null})", R"({"a":{"b":"c"}})", R"({"a":["x"]})", R"({"a":true})"}) {
    SCOPED_TRACE(meta);
    ExpectError(ParseHeaderText(std::string(R"({"__metadata__":)") + meta + "}", 0).status(),
                {"'__metadata__' value of 'a' must be a string"});
  }
  for (const char* meta : {"[]", "\"format\"", "3"}) {
    SCOPED_TRACE(meta);
    ExpectError(ParseHeaderText(std::string(R"({"__metadata__":)") + meta + "}", 0).status(),
                {"'__metadata__' must be an object of strings"});
  }
}

// ---- A3: offsets ---------------------------------------------------------------------

TEST(SafetensorsA3, OffsetsMustTileTheDataSection) {
  struct Case {
    const char* header;
    size_t data;
    std::vector<std::string> needles;
  };
  const Case cases[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, {"overlap", "tensor 'b'", "tensor 'a'"}},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       12, {"gap", "4 bytes", "tensor 'a'", "tensor 'b'"}},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, {"gap", "first 4 bytes", "tensor 'a'"}},
      {R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, {"tensor 'a'", "end is before begin"}},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, {"tensor 'a'", "beyond the end of the file"}},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12, {"8 trailing bytes", "not indexed"}},
      {R"({})", 1, {"1 trailing bytes"}},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4, {"tensor 'a'", "beyond"}},
      // Same offsets twice: the second overlaps the first.
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       4, {"overlap"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    Status s = ParseHeaderText(c.header, c.data).status();
    ASSERT_FALSE(s.ok());
    for (const std::string& n : c.needles) EXPECT_NE(s.message().find(n), std::string::npos) << s.message();
  }
}

TEST(SafetensorsA3, MalformedOffsets) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "exactly two"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "exactly two"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}})", "must be a list"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[[0],4]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", "missing 'data_offsets'"},
  };
  for (const auto& [header, needle] : cases) {
    SCOPED_TRACE(header);
    ExpectError(ParseHeaderText(header, 4).status(), {"tensor 'a'", needle});
  }
}

// ---- A4: shapes and dtypes --------------------------------------------------------------

TEST(SafetensorsA4, ShapeTimesDtypeMustMatchTheByteRange) {
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"BF16","shape":[3,4],"data_offsets":[0,48]}})", 48).status(),
              {"tensor 'w'", "[3, 4]", "BF16", "needs 24 bytes", "span 48"});
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[],"data_offsets":[0,0]}})", 0).status(),
              {"tensor 'w'", "needs 4 bytes"});
}

TEST(SafetensorsA4, ShapeProductOverflow) {
  // [2^32, 2^32, 16]: the element count overflows u64.
  ExpectError(
      ParseHeaderText(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 0).status(),
      {"tensor 'w'", "overflows"});
  // 2^62 elements fit, their bytes in F32 do not.
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0).status(),
              {"tensor 'w'", "overflows"});
  // A dimension beyond int64.
  ExpectError(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", 0).status(),
              {"tensor 'w'", "too large"});
  // A zero dimension makes a huge one harmless, as in the crate.
  EXPECT_TRUE(ParseHeaderText(R"({"w":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}})", 0).ok());
}

TEST(SafetensorsA4, BadShapesAndDtypes) {
  const std::pair<const char*, std::vector<std::string>> cases[] = {
      {R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", {"tensor 'w'", "unknown dtype 'F33'"}},
      {R"({"w":{"dtype":"Q4_0","shape":[32],"data_offsets":[0,18]}})", {"tensor 'w'", "unknown dtype 'Q4_0'"}},
      {R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", {"unknown dtype 'f32'"}},
      {R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", {"tensor 'w'", "'F8_E4M3' is not supported"}},
      {R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", {"tensor 'w'", "'dtype' must be a string"}},
      {R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", {"tensor 'w'", "non-negative integers"}},
      {R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", {"tensor 'w'", "non-negative integers"}},
      {R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", {"tensor 'w'", "non-negative integers"}},
      {R"({"w":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})", {"tensor 'w'", "non-negative integers"}},
      {R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", {"tensor 'w'", "'shape' must be a list"}},
      {R"({"w":{"shape":[1],"data_offsets":[0,4]}})", {"tensor 'w'", "missing 'dtype'"}},
      {R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", {"tensor 'w'", "missing 'shape'"}},
      {R"({"w":[1,2]})", {"tensor 'w'", "must be an object"}},
      {R"({"w":"F32"})", {"tensor 'w'", "must be an object"}},
  };
  for (const auto& [header, needles] : cases) {
    SCOPED_TRACE(header);
    Status s = ParseHeaderText(header, 4).status();
    ASSERT_FALSE(s.ok());
    for (const std::string& n : needles) EXPECT_NE(s.message().find(n), std::string::npos) << s.message();
  }
  EXPECT_EQ(ParseHeaderText(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4).status().code(),
            StatusCode::kUnimplemented);
  std::string rank65 = R"({"w":{"dtype":"F32","shape":[)";
  for (int i = 0; i < 65; ++i) rank65 += i ? ",1" : "1";
  ExpectError(ParseHeaderText(rank65 + R"(],"data_offsets":[0,4]}})", 4).status(), {"tensor 'w'", "dimensions"});
}

TEST(SafetensorsA4, OpenNamesTheFile) {
  StTempFolder dir("st_open");
  const std::string path = dir / "bad.safetensors";
  testing::StWriteFile(path, StRawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", {0, 0, 0, 0}));
  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ExpectError(f.status(), {path, "tensor 'w'"});
  EXPECT_EQ(SafetensorsFile::Open(dir / "absent.safetensors").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(SafetensorsFile::Open(dir.path()).ok());  // a directory
}

// ---- robustness -------------------------------------------------------------------------------

TEST(Safetensors, RandomCorruptionsNeverCrash) {
  // Flip, truncate and extend valid files at random: every outcome is a
  // status, and an accepted file still satisfies the layout invariants.
  std::mt19937 rng = Rng();
  const std::vector<uint8_t> valid = StBuild({RandomTensor(rng, "a", "F32", {2, 3}), RandomTensor(rng, "bb", "BF16", {5}),
                                              RandomTensor(rng, "c", "I64", {1})},
                                             {{"format", "pt"}});
  const size_t header_end = 8 + (valid[0] | valid[1] << 8);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0: bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng()); break;
        case 1:
          if (bytes.size() >= header_end) bytes[8 + rng() % (header_end - 8)] = "{}[],:\"0123456789-e. "[rng() % 22];
          break;
        case 2: bytes.resize(rng() % bytes.size()); break;
        case 3: bytes.insert(bytes.begin() + static_cast<long>(rng() % bytes.size()), static_cast<uint8_t>(rng())); break;
      }
      if (bytes.empty()) break;
    }
    Result<SafetensorsHeader> h = Parse(bytes);
    if (!h.ok()) continue;
    uint64_t cursor = 0;
    for (const SafetensorsEntry& t : h->tensors) {
      ASSERT_EQ(t.begin, cursor);
      cursor = t.end;
    }
    ASSERT_EQ(h->data_offset() + cursor, bytes.size());
  }
}

}  // namespace
}  // namespace lserve
