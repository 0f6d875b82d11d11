// GgufFile: a validated, read-only view of a GGUF v2/v3 file (the container
// format of llama.cpp / ggml). Metadata values and tensor data are viewed in
// place (memory-mapped, nothing copied); strings, including the 10^5 entries
// of tokenizer.ggml.tokens, are string_views into the file.
//
// Layout (little-endian; v2 and v3 are identical, v1 is refused):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv x { string key, u32 value_type, value }
//   n_tensors x { string name, u32 n_dims, n_dims x i64 ne, u32 ggml_type, u64 offset }
//   padding to general.alignment (default 32), then the data section; a
//   tensor's bytes are data_section[offset, offset + nbytes).
//   string = u64 length + bytes; array = u32 element type + u64 count + elements.
//
// Every count, length and offset is checked against the bytes that remain
// before anything is allocated from it (RELIABILITY.md A7): a hostile file
// gets an InvalidArgument naming the defect, never a crash or a huge
// allocation.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace lserve {

// Metadata value types, numbered as the file stores them.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
std::string_view GgufValueTypeName(GgufValueType t);  // "u32", "string", "array", ...

// ggml tensor type ids used by the supported dtypes. The full table (names and
// block sizes of every ggml type, for listing) is GgmlTypeInfoFor().
namespace ggml_type {
inline constexpr uint32_t kF32 = 0;
inline constexpr uint32_t kF16 = 1;
inline constexpr uint32_t kQ4_0 = 2;
inline constexpr uint32_t kQ4_1 = 3;
inline constexpr uint32_t kQ8_0 = 8;
inline constexpr uint32_t kQ4_K = 12;
inline constexpr uint32_t kQ6_K = 14;
inline constexpr uint32_t kBF16 = 30;
}  // namespace ggml_type

struct GgmlTypeInfo {
  uint32_t id = 0;
  std::string_view name;  // ggml's name: "F32", "Q4_K", "IQ2_XXS", ...
  int64_t block_elems = 0;
  int64_t block_bytes = 0;
  // The lserve element type, for the types this build can load.
  std::optional<DType> dtype;
};
// nullptr for ids ggml never defined or has removed (Q4_2, Q4_0_4_4, ...).
const GgmlTypeInfo* GgmlTypeInfoFor(uint32_t id);
// The ggml id of a supported lserve dtype (inverse of GgmlTypeInfo::dtype).
std::optional<uint32_t> GgmlTypeForDType(DType t);

class GgufFile;

// One metadata value, viewed in place. Scalars keep their raw bits; arrays of
// numbers/bools point at the file's (possibly unaligned) little-endian bytes;
// arrays of strings and of arrays index tables owned by the GgufFile.
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  // Arrays: the element type and count.
  GgufValueType element_type() const { return element_type_; }
  uint64_t array_size() const { return count_; }

  bool is_integer() const;  // u8..i64 (not bool)
  bool is_float() const;    // f32, f64

  // Scalar accessors: nullopt when the type does not fit (a negative value
  // for an unsigned request, a u64 above INT64_MAX for a signed one, ...).
  std::optional<uint64_t> AsUInt() const;
  std::optional<int64_t> AsInt() const;
  std::optional<double> AsDouble() const;  // f32, f64 and integers
  std::optional<bool> AsBool() const;
  std::optional<std::string_view> AsString() const;

  // Array elements (element i < array_size()); the caller checks
  // element_type(). Numeric elements are widened exactly.
  std::string_view StringAt(const GgufFile& file, uint64_t i) const;
  const GgufValue& ArrayAt(const GgufFile& file, uint64_t i) const;
  int64_t IntAt(uint64_t i) const;       // integer element types except u64 > INT64_MAX
  uint64_t UIntBitsAt(uint64_t i) const; // raw value of any integer element type, zero-extended
  double DoubleAt(uint64_t i) const;     // f32 / f64 / integer elements
  // Raw element bytes of a numeric/bool array (count * element size).
  std::span<const uint8_t> raw_elements() const { return {raw_, raw_size_}; }

 private:
  friend class GgufParser;
  friend class GgufFile;
  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  uint64_t count_ = 0;
  uint64_t scalar_bits_ = 0;      // scalars (little-endian value, zero-extended)
  std::string_view string_;       // kString scalars
  const uint8_t* raw_ = nullptr;  // numeric/bool arrays
  size_t raw_size_ = 0;
  uint64_t first_ = 0;            // string / nested-array tables: first index
};

struct GgufKeyValue {
  std::string_view key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string_view name;  // ggml name, e.g. "blk.0.attn_q.weight"
  uint32_t ggml_type = 0;
  const GgmlTypeInfo* type = nullptr;  // never null after a successful parse
  uint32_t n_dims = 0;                 // 1..4
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // innermost (row) dimension first
  uint64_t offset = 0;                 // in the data section
  uint64_t n_bytes = 0;
  std::span<const uint8_t> data;       // view into the file

  int64_t num_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // torch order: ne[n_dims-1], ..., ne[0].
  std::vector<int64_t> shape() const;
};

// Limits that keep hostile files cheap (RELIABILITY.md, GGUF defaults).
struct GgufLimits {
  static constexpr uint64_t kMaxStringBytes = 1u << 20;     // any string value or key
  static constexpr uint64_t kMaxArrayElements = 1u << 24;   // per array
  static constexpr int kMaxArrayDepth = 8;                  // arrays of arrays
  static constexpr uint64_t kMaxTensorNameBytes = 63;       // ggml's GGML_MAX_NAME - 1
  static constexpr uint32_t kDefaultAlignment = 32;
  // File-wide caps, far above real files (tens of keys, a few thousand
  // tensors, a vocabulary and its merges of a few 10^5 strings), that bound
  // the parser's memory whatever the file size.
  static constexpr uint64_t kMaxMetadataEntries = 1u << 20;
  static constexpr uint64_t kMaxTensors = 1u << 20;
  static constexpr uint64_t kMaxStringsPerFile = 1u << 25;
  static constexpr uint64_t kMaxNestedArraysPerFile = 1u << 20;
};

class GgufFile {
 public:
  // Maps `path` read-only and parses it; tensor data stays in the map.
  static Result<std::shared_ptr<const GgufFile>> Open(const std::string& path);
  // Parses bytes the caller keeps alive (and unchanged) for as long as the
  // result or anything viewed through it lives. `name` appears in errors.
  static Result<std::shared_ptr<const GgufFile>> Parse(std::span<const uint8_t> bytes,
                                                       std::string name = "<memory>");
  // Parses bytes that the result then owns.
  static Result<std::shared_ptr<const GgufFile>> ParseOwned(std::vector<uint8_t> bytes,
                                                            std::string name = "<memory>");

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // from the file start
  uint64_t file_size() const { return bytes_.size(); }

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return kvs_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: NotFound when the key is absent, InvalidArgument naming
  // the key and both types on a mismatch or a value out of range.
  Result<std::string> GetString(std::string_view key) const;
  Result<std::string_view> GetStringView(std::string_view key) const;
  Result<uint64_t> GetUInt(std::string_view key) const;  // any integer type, value >= 0
  Result<int64_t> GetInt(std::string_view key) const;    // any integer type that fits
  Result<double> GetFloat(std::string_view key) const;   // f32, f64 (exact) or integer
  Result<bool> GetBool(std::string_view key) const;
  // Arrays. Strings are views into the file (no copy).
  Result<std::span<const std::string_view>> GetStringArray(std::string_view key) const;
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // any integer elements
  Result<std::vector<int32_t>> GetI32Array(std::string_view key) const;  // integer elements that fit i32
  Result<std::vector<float>> GetF32Array(std::string_view key) const;    // f32 elements
  Result<std::vector<double>> GetFloatArray(std::string_view key) const; // f32/f64/integer elements
  Result<std::vector<bool>> GetBoolArray(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

 private:
  friend class GgufParser;
  friend class GgufValue;
  GgufFile() = default;
  static Result<std::shared_ptr<const GgufFile>> ParseInto(std::shared_ptr<GgufFile> file);
  Result<const GgufValue*> FindTyped(std::string_view key, GgufValueType want) const;
  Result<const GgufValue*> FindArray(std::string_view key, std::string_view what) const;

  std::string path_;
  MappedFile map_;               // when opened from a path
  std::vector<uint8_t> owned_;   // when parsed from owned bytes
  std::span<const uint8_t> bytes_;

  uint32_t version_ = 0;
  uint32_t alignment_ = GgufLimits::kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> kvs_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<std::string_view> strings_;  // elements of string arrays
  std::vector<GgufValue> nested_;          // elements of arrays of arrays
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace lserve
