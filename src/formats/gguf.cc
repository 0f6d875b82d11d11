#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

namespace lserve {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader views little-endian file bytes in place");

namespace {

// Every ggml type id with its block geometry (ggml.c type_traits). Removed ids
// (Q4_2, Q4_3, the repacked Q4_0_x_y / IQ4_NL_x_y) have no entry: a file that
// uses them is refused as ggml refuses it.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4, DType::kF32},
    {1, "F16", 1, 2, DType::kF16},
    {2, "Q4_0", 32, 18, DType::kQ4_0},
    {3, "Q4_1", 32, 20, DType::kQ4_1},
    {6, "Q5_0", 32, 22, std::nullopt},
    {7, "Q5_1", 32, 24, std::nullopt},
    {8, "Q8_0", 32, 34, DType::kQ8_0},
    {9, "Q8_1", 32, 36, std::nullopt},
    {10, "Q2_K", 256, 84, std::nullopt},
    {11, "Q3_K", 256, 110, std::nullopt},
    {12, "Q4_K", 256, 144, DType::kQ4_K},
    {13, "Q5_K", 256, 176, std::nullopt},
    {14, "Q6_K", 256, 210, DType::kQ6_K},
    {15, "Q8_K", 256, 292, std::nullopt},
    {16, "IQ2_XXS", 256, 66, std::nullopt},
    {17, "IQ2_XS", 256, 74, std::nullopt},
    {18, "IQ3_XXS", 256, 98, std::nullopt},
    {19, "IQ1_S", 256, 50, std::nullopt},
    {20, "IQ4_NL", 32, 18, std::nullopt},
    {21, "IQ3_S", 256, 110, std::nullopt},
    {22, "IQ2_S", 256, 82, std::nullopt},
    {23, "IQ4_XS", 256, 136, std::nullopt},
    {24, "I8", 1, 1, DType::kI8},
    {25, "I16", 1, 2, DType::kI16},
    {26, "I32", 1, 4, DType::kI32},
    {27, "I64", 1, 8, DType::kI64},
    {28, "F64", 1, 8, DType::kF64},
    {29, "IQ1_M", 256, 56, std::nullopt},
    {30, "BF16", 1, 2, DType::kBF16},
    {34, "TQ1_0", 256, 54, std::nullopt},
    {35, "TQ2_0", 256, 66, std::nullopt},
    {39, "MXFP4", 32, 17, std::nullopt},
    {40, "NVFP4", 64, 36, std::nullopt},
    {41, "Q1_0", 128, 18, std::nullopt},
};

std::string_view RemovedGgmlTypeName(uint32_t id) {
  switch (id) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 36: return "IQ4_NL_4_4";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return {};
  }
}

// Bytes of one scalar of a fixed-size value type; 0 for string and array.
uint64_t ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16: return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32: return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64: return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray: return 0;
  }
  return 0;
}

bool IsValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

bool IsIntegerType(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kU64:
    case GgufValueType::kI64: return true;
    default: return false;
  }
}

bool IsSignedType(GgufValueType t) {
  return t == GgufValueType::kI8 || t == GgufValueType::kI16 || t == GgufValueType::kI32 ||
         t == GgufValueType::kI64;
}

// Reads a little-endian scalar of `t` from `p`, zero-extended to 64 bits.
uint64_t LoadBits(const uint8_t* p, GgufValueType t) {
  uint64_t bits = 0;
  std::memcpy(&bits, p, ScalarBytes(t));
  return bits;
}

// The value of integer bits of type `t` as a signed 64-bit number
// (u64 values above INT64_MAX wrap; callers check with IsSignedType first).
int64_t SignExtend(uint64_t bits, GgufValueType t) {
  switch (t) {
    case GgufValueType::kI8: return static_cast<int8_t>(bits);
    case GgufValueType::kI16: return static_cast<int16_t>(bits);
    case GgufValueType::kI32: return static_cast<int32_t>(bits);
    default: return static_cast<int64_t>(bits);
  }
}

double BitsToDouble(uint64_t bits, GgufValueType t) {
  if (t == GgufValueType::kF32) return F32FromBits(static_cast<uint32_t>(bits));
  if (t == GgufValueType::kF64) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  if (IsSignedType(t)) return static_cast<double>(SignExtend(bits, t));
  return static_cast<double>(bits);
}

std::string Quoted(std::string_view s) {
  // Keys and names in messages: printable ASCII kept, the rest escaped, long
  // ones cut, so that a hostile name cannot flood or garble a terminal.
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + "'";
}

std::string U64(uint64_t v) { return std::to_string(v); }

}  // namespace

std::string_view GgufValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: return "u8";
    case GgufValueType::kI8: return "i8";
    case GgufValueType::kU16: return "u16";
    case GgufValueType::kI16: return "i16";
    case GgufValueType::kU32: return "u32";
    case GgufValueType::kI32: return "i32";
    case GgufValueType::kF32: return "f32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kU64: return "u64";
    case GgufValueType::kI64: return "i64";
    case GgufValueType::kF64: return "f64";
  }
  return "unknown";
}

const GgmlTypeInfo* GgmlTypeInfoFor(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

std::optional<uint32_t> GgmlTypeForDType(DType d) {
  for (const auto& t : kGgmlTypes)
    if (t.dtype == d) return t.id;
  return std::nullopt;
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  std::vector<int64_t> s;
  for (uint32_t i = n_dims; i-- > 0;) s.push_back(ne[i]);
  return s;
}

// ---------------------------------------------------------------------------
// GgufValue

bool GgufValue::is_integer() const { return IsIntegerType(type_); }
bool GgufValue::is_float() const { return type_ == GgufValueType::kF32 || type_ == GgufValueType::kF64; }

std::optional<uint64_t> GgufValue::AsUInt() const {
  if (!is_integer()) return std::nullopt;
  if (IsSignedType(type_)) {
    const int64_t v = SignExtend(scalar_bits_, type_);
    if (v < 0) return std::nullopt;
    return static_cast<uint64_t>(v);
  }
  return scalar_bits_;
}

std::optional<int64_t> GgufValue::AsInt() const {
  if (!is_integer()) return std::nullopt;
  if (type_ == GgufValueType::kU64 && scalar_bits_ > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return SignExtend(scalar_bits_, type_);
}

std::optional<double> GgufValue::AsDouble() const {
  if (!is_integer() && !is_float()) return std::nullopt;
  return BitsToDouble(scalar_bits_, type_);
}

std::optional<bool> GgufValue::AsBool() const {
  if (type_ != GgufValueType::kBool) return std::nullopt;
  return scalar_bits_ != 0;
}

std::optional<std::string_view> GgufValue::AsString() const {
  if (type_ != GgufValueType::kString) return std::nullopt;
  return string_;
}

std::string_view GgufValue::StringAt(const GgufFile& file, uint64_t i) const {
  return file.strings_[first_ + i];
}

const GgufValue& GgufValue::ArrayAt(const GgufFile& file, uint64_t i) const {
  return file.nested_[first_ + i];
}

uint64_t GgufValue::UIntBitsAt(uint64_t i) const {
  const uint64_t size = ScalarBytes(element_type_);
  return LoadBits(raw_ + i * size, element_type_);
}

int64_t GgufValue::IntAt(uint64_t i) const { return SignExtend(UIntBitsAt(i), element_type_); }

double GgufValue::DoubleAt(uint64_t i) const { return BitsToDouble(UIntBitsAt(i), element_type_); }

// ---------------------------------------------------------------------------
// Parser

class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : f_(file), bytes_(file.bytes_) {}

  Status Run();

 private:
  uint64_t remaining() const { return bytes_.size() - pos_; }

  Status Need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      return InvalidArgument(what + " needs " + U64(n) + " bytes at offset " + U64(pos_) + " but only " +
                             U64(remaining()) + " remain (truncated file?)");
    return Status::Ok();
  }

  template <typename T>
  Status Read(T* out, const std::string& what) {
    LSERVE_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string_view* out, uint64_t max_bytes, const std::string& what) {
    uint64_t len = 0;
    LSERVE_RETURN_IF_ERROR(Read(&len, what + " length"));
    if (len > max_bytes)
      return InvalidArgument(what + " has length " + U64(len) + ", above the limit of " + U64(max_bytes) +
                             " bytes");
    LSERVE_RETURN_IF_ERROR(Need(len, what));
    *out = std::string_view(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

  Status ReadValueType(GgufValueType* out, const std::string& what) {
    uint32_t t = 0;
    LSERVE_RETURN_IF_ERROR(Read(&t, what));
    if (!IsValidValueType(t))
      return InvalidArgument(what + " is " + std::to_string(static_cast<int32_t>(t)) +
                             ", not a GGUF value type (0..12)");
    *out = static_cast<GgufValueType>(t);
    return Status::Ok();
  }

  Status ParseHeader(uint64_t* n_tensors, uint64_t* n_kv);
  Status ParseValue(GgufValueType type, GgufValue* out, const std::string& what);
  Status ParseArrayBody(int depth, GgufValue* out, const std::string& what);
  Status ParseKeyValues(uint64_t n_kv);
  Status ParseAlignment();
  Status ParseTensorInfos(uint64_t n_tensors);
  Status PlaceTensorData();

  GgufFile& f_;
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

Status GgufParser::ParseHeader(uint64_t* n_tensors, uint64_t* n_kv) {
  if (bytes_.size() < 4) return InvalidArgument("not a GGUF file: only " + U64(bytes_.size()) + " bytes");
  if (std::memcmp(bytes_.data(), "GGUF", 4) != 0) {
    std::string magic(reinterpret_cast<const char*>(bytes_.data()), 4);
    return InvalidArgument("not a GGUF file: magic is " + Quoted(magic) + ", expected 'GGUF'");
  }
  pos_ = 4;
  uint32_t version = 0;
  LSERVE_RETURN_IF_ERROR(Read(&version, "the version"));
  const uint32_t swapped = __builtin_bswap32(version);
  if (version != 0 && (version & 0xffffu) == 0 && swapped >= 1 && swapped <= 3)
    return InvalidArgument("this is a big-endian GGUF file (version " + std::to_string(swapped) +
                           " byte-swapped); only little-endian GGUF files are supported");
  if (version == 0) return InvalidArgument("bad GGUF version 0");
  if (version == 1)
    return InvalidArgument("GGUF version 1 is no longer supported; convert the model again with a current llama.cpp");
  if (version > 3) return InvalidArgument("GGUF version " + U64(version) + " is newer than the supported versions 2 and 3");
  f_.version_ = version;

  LSERVE_RETURN_IF_ERROR(Read(n_tensors, "the tensor count"));
  LSERVE_RETURN_IF_ERROR(Read(n_kv, "the metadata count"));
  // Minimal encodings: a key-value takes >= 13 bytes (u64 key length, u32
  // type, 1 byte of value; an empty key is refused later with its own
  // message), a tensor info >= 33 bytes (u64 name length, 1 byte of name,
  // u32 n_dims, one i64, u32 type, u64 offset). Counts that cannot fit are
  // refused before anything is reserved from them.
  const uint64_t rem = remaining();
  if (*n_kv > GgufLimits::kMaxMetadataEntries)
    return InvalidArgument("metadata count " + U64(*n_kv) + " is above the limit of " +
                           U64(GgufLimits::kMaxMetadataEntries));
  if (*n_tensors > GgufLimits::kMaxTensors)
    return InvalidArgument("tensor count " + U64(*n_tensors) + " is above the limit of " +
                           U64(GgufLimits::kMaxTensors));
  if (*n_kv > rem / 13)
    return InvalidArgument("metadata count " + U64(*n_kv) + " cannot fit in the " + U64(rem) + " remaining bytes");
  if (*n_tensors > rem / 33)
    return InvalidArgument("tensor count " + U64(*n_tensors) + " cannot fit in the " + U64(rem) + " remaining bytes");
  if (*n_kv * 13 + *n_tensors * 33 > rem)
    return InvalidArgument("metadata count " + U64(*n_kv) + " and tensor count " + U64(*n_tensors) +
                           " cannot fit in the " + U64(rem) + " remaining bytes");
  return Status::Ok();
}

Status GgufParser::ParseValue(GgufValueType type, GgufValue* out, const std::string& what) {
  out->type_ = type;
  if (type == GgufValueType::kString) return ReadString(&out->string_, GgufLimits::kMaxStringBytes, what);
  if (type == GgufValueType::kArray) return ParseArrayBody(1, out, what);
  const uint64_t size = ScalarBytes(type);
  LSERVE_RETURN_IF_ERROR(Need(size, what));
  out->scalar_bits_ = LoadBits(bytes_.data() + pos_, type);
  pos_ += size;
  return Status::Ok();
}

// An array body: u32 element type, u64 count, elements. `depth` counts the
// arrays enclosing this one, itself included.
Status GgufParser::ParseArrayBody(int depth, GgufValue* out, const std::string& what) {
  if (depth > GgufLimits::kMaxArrayDepth)
    return InvalidArgument(what + ": arrays nested deeper than " + std::to_string(GgufLimits::kMaxArrayDepth) +
                           " levels");
  out->type_ = GgufValueType::kArray;
  LSERVE_RETURN_IF_ERROR(ReadValueType(&out->element_type_, what + " element type"));
  uint64_t count = 0;
  LSERVE_RETURN_IF_ERROR(Read(&count, what + " element count"));
  if (count > GgufLimits::kMaxArrayElements)
    return InvalidArgument(what + " has " + U64(count) + " elements, above the limit of " +
                           U64(GgufLimits::kMaxArrayElements));
  const GgufValueType et = out->element_type_;
  // Smallest encoding of one element: strings carry a u64 length, arrays a
  // u32 type and a u64 count.
  const uint64_t min_elem = et == GgufValueType::kString ? 8 : et == GgufValueType::kArray ? 12 : ScalarBytes(et);
  if (count > remaining() / min_elem)
    return InvalidArgument(what + " has " + U64(count) + " elements of type " +
                           std::string(GgufValueTypeName(et)) + ", more than the " + U64(remaining()) +
                           " remaining bytes can hold");
  out->count_ = count;
  if (et == GgufValueType::kString) {
    if (f_.strings_.size() + count > GgufLimits::kMaxStringsPerFile)
      return InvalidArgument(what + ": the file holds more than " + U64(GgufLimits::kMaxStringsPerFile) +
                             " strings in arrays");
    out->first_ = f_.strings_.size();
    for (uint64_t i = 0; i < count; ++i) {
      std::string_view s;
      // The element's name is built only for an error (vocabularies have 10^5 entries).
      if (Status st = ReadString(&s, GgufLimits::kMaxStringBytes, "element"); !st.ok())
        return InvalidArgument(what + "[" + U64(i) + "]: " + st.message());
      f_.strings_.push_back(s);
    }
    return Status::Ok();
  }
  if (et == GgufValueType::kArray) {
    if (f_.nested_.size() + count > GgufLimits::kMaxNestedArraysPerFile)
      return InvalidArgument(what + ": the file holds more than " + U64(GgufLimits::kMaxNestedArraysPerFile) +
                             " arrays inside arrays");
    // Reserve the slots first: nested arrays append their own children after.
    out->first_ = f_.nested_.size();
    f_.nested_.resize(f_.nested_.size() + count);
    for (uint64_t i = 0; i < count; ++i) {
      GgufValue child;
      LSERVE_RETURN_IF_ERROR(ParseArrayBody(depth + 1, &child, what + "[" + U64(i) + "]"));
      f_.nested_[out->first_ + i] = child;
    }
    return Status::Ok();
  }
  out->raw_ = bytes_.data() + pos_;
  out->raw_size_ = count * min_elem;
  pos_ += out->raw_size_;
  return Status::Ok();
}

Status GgufParser::ParseKeyValues(uint64_t n_kv) {
  // Counts were checked against the bytes; the reservation is bounded anyway.
  f_.kvs_.reserve(std::min<uint64_t>(n_kv, 1u << 12));
  f_.kv_index_.reserve(std::min<uint64_t>(n_kv, 1u << 12));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string what = "metadata entry #" + U64(i);
    GgufKeyValue kv;
    LSERVE_RETURN_IF_ERROR(ReadString(&kv.key, GgufLimits::kMaxStringBytes, what + " key"));
    if (kv.key.empty()) return InvalidArgument(what + " has an empty key");
    if (f_.kv_index_.count(kv.key)) return InvalidArgument("duplicate metadata key " + Quoted(kv.key));
    const std::string named = "metadata " + Quoted(kv.key);
    GgufValueType type;
    LSERVE_RETURN_IF_ERROR(ReadValueType(&type, named + " value type"));
    LSERVE_RETURN_IF_ERROR(ParseValue(type, &kv.value, named));
    f_.kv_index_.emplace(kv.key, f_.kvs_.size());
    f_.kvs_.push_back(kv);
  }
  return Status::Ok();
}

Status GgufParser::ParseAlignment() {
  const GgufValue* v = f_.Find("general.alignment");
  if (v == nullptr) return Status::Ok();
  if (v->type() != GgufValueType::kU32)
    return InvalidArgument("general.alignment has type " + std::string(GgufValueTypeName(v->type())) +
                           ", expected u32");
  const uint64_t a = *v->AsUInt();
  if (a == 0 || (a & (a - 1)) != 0)
    return InvalidArgument("general.alignment " + U64(a) + " is not a power of two");
  f_.alignment_ = static_cast<uint32_t>(a);
  return Status::Ok();
}

Status GgufParser::ParseTensorInfos(uint64_t n_tensors) {
  f_.tensors_.reserve(std::min<uint64_t>(n_tensors, 1u << 16));
  f_.tensor_index_.reserve(std::min<uint64_t>(n_tensors, 1u << 16));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    const std::string what = "tensor #" + U64(i);
    // Names are capped like ggml's (GGML_MAX_NAME), so no real file is refused.
    LSERVE_RETURN_IF_ERROR(ReadString(&t.name, GgufLimits::kMaxTensorNameBytes, what + " name"));
    if (t.name.empty()) return InvalidArgument(what + " has an empty name");
    if (f_.tensor_index_.count(t.name)) return InvalidArgument("duplicate tensor name " + Quoted(t.name));
    const std::string named = "tensor " + Quoted(t.name);

    LSERVE_RETURN_IF_ERROR(Read(&t.n_dims, named + " n_dims"));
    if (t.n_dims < 1 || t.n_dims > 4)
      return InvalidArgument(named + " has " + U64(t.n_dims) + " dimensions; GGUF allows 1 to 4");
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      LSERVE_RETURN_IF_ERROR(Read(&t.ne[d], named + " ne[" + U64(d) + "]"));
      if (t.ne[d] < 0)
        return InvalidArgument(named + " has a negative dimension ne[" + U64(d) + "] = " + std::to_string(t.ne[d]));
    }
    for (uint32_t d = 0; d < 4; ++d) {
      if (__builtin_mul_overflow(n_elems, t.ne[d], &n_elems))
        return InvalidArgument(named + " has too many elements: the product of its dimensions overflows int64");
    }

    LSERVE_RETURN_IF_ERROR(Read(&t.ggml_type, named + " type"));
    t.type = GgmlTypeInfoFor(t.ggml_type);
    if (t.type == nullptr) {
      const std::string_view removed = RemovedGgmlTypeName(t.ggml_type);
      if (!removed.empty())
        return InvalidArgument(named + " has ggml type " + U64(t.ggml_type) + " (" + std::string(removed) +
                               "), which ggml has removed");
      return InvalidArgument(named + " has unknown ggml type " + std::to_string(static_cast<int32_t>(t.ggml_type)));
    }
    if (t.ne[0] % t.type->block_elems != 0)
      return InvalidArgument(named + " of type " + std::string(t.type->name) + " has rows of " +
                             std::to_string(t.ne[0]) + " elements, not a multiple of the block size " +
                             std::to_string(t.type->block_elems));
    const uint64_t blocks = static_cast<uint64_t>(n_elems / t.type->block_elems);
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(t.type->block_bytes), &t.n_bytes) ||
        t.n_bytes > static_cast<uint64_t>(INT64_MAX))
      return InvalidArgument(named + " is too large: its size in bytes overflows");

    LSERVE_RETURN_IF_ERROR(Read(&t.offset, named + " offset"));
    if (t.offset % f_.alignment_ != 0)
      return InvalidArgument(named + " has offset " + U64(t.offset) + ", not a multiple of the alignment " +
                             U64(f_.alignment_));
    f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    f_.tensors_.push_back(t);
  }
  return Status::Ok();
}

Status GgufParser::PlaceTensorData() {
  uint64_t data_offset = pos_;
  if (!f_.tensors_.empty()) {
    const uint64_t a = f_.alignment_;
    data_offset = (pos_ + a - 1) / a * a;  // pos_ < 2^63 and a < 2^32: no overflow
    if (data_offset > bytes_.size())
      return InvalidArgument("the data section would start at offset " + U64(data_offset) +
                             ", beyond the end of the file (" + U64(bytes_.size()) + " bytes)");
  }
  f_.data_offset_ = data_offset;
  const uint64_t data_size = bytes_.size() - data_offset;
  // Tensors are stored in order, each after the end of the one before
  // (llama.cpp writes them back to back, padded to the alignment).
  uint64_t prev_end = 0;
  std::string_view prev_name;
  for (auto& t : f_.tensors_) {
    const std::string named = "tensor " + Quoted(t.name);
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      return InvalidArgument(named + " needs bytes [" + U64(t.offset) + ", " + U64(t.offset) + " + " +
                             U64(t.n_bytes) + ") of the data section, which has only " + U64(data_size) +
                             " bytes (truncated file?)");
    if (t.offset < prev_end)
      return InvalidArgument(named + " at offset " + U64(t.offset) + " overlaps or precedes tensor " +
                             Quoted(prev_name) + ", which ends at " + U64(prev_end));
    prev_end = t.offset + t.n_bytes;
    prev_name = t.name;
    t.data = bytes_.subspan(data_offset + t.offset, t.n_bytes);
  }
  return Status::Ok();
}

Status GgufParser::Run() {
  uint64_t n_tensors = 0, n_kv = 0;
  LSERVE_RETURN_IF_ERROR(ParseHeader(&n_tensors, &n_kv));
  LSERVE_RETURN_IF_ERROR(ParseKeyValues(n_kv));
  LSERVE_RETURN_IF_ERROR(ParseAlignment());
  LSERVE_RETURN_IF_ERROR(ParseTensorInfos(n_tensors));
  return PlaceTensorData();
}

// ---------------------------------------------------------------------------
// GgufFile

Result<std::shared_ptr<const GgufFile>> GgufFile::ParseInto(std::shared_ptr<GgufFile> file) {
  GgufParser parser(*file);
  Status s = parser.Run();
  if (!s.ok()) return s.Annotate("GGUF " + Quoted(file->path_));
  return std::shared_ptr<const GgufFile>(std::move(file));
}

Result<std::shared_ptr<const GgufFile>> GgufFile::Open(const std::string& path) {
  auto map = MappedFile::Open(path);
  if (!map.ok()) return map.status();
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->map_ = std::move(map).value();
  file->bytes_ = file->map_.bytes();
  return ParseInto(std::move(file));
}

Result<std::shared_ptr<const GgufFile>> GgufFile::Parse(std::span<const uint8_t> bytes, std::string name) {
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->bytes_ = bytes;
  return ParseInto(std::move(file));
}

Result<std::shared_ptr<const GgufFile>> GgufFile::ParseOwned(std::vector<uint8_t> bytes, std::string name) {
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->owned_ = std::move(bytes);
  file->bytes_ = file->owned_;
  return ParseInto(std::move(file));
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(std::string_view key) { return NotFound("GGUF metadata key " + Quoted(key) + " is missing"); }

Status Mismatch(std::string_view key, const GgufValue& v, std::string_view expected) {
  std::string type(GgufValueTypeName(v.type()));
  if (v.type() == GgufValueType::kArray) type = "array of " + std::string(GgufValueTypeName(v.element_type()));
  return InvalidArgument("GGUF metadata key " + Quoted(key) + " has type " + type + ", expected " +
                         std::string(expected));
}

}  // namespace

Result<const GgufValue*> GgufFile::FindTyped(std::string_view key, GgufValueType want) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type() != want) return Mismatch(key, *v, GgufValueTypeName(want));
  return v;
}

Result<const GgufValue*> GgufFile::FindArray(std::string_view key, std::string_view what) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type() != GgufValueType::kArray) return Mismatch(key, *v, what);
  return v;
}

Result<std::string_view> GgufFile::GetStringView(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindTyped(key, GgufValueType::kString));
  return *v->AsString();
}

Result<std::string> GgufFile::GetString(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(std::string_view s, GetStringView(key));
  return std::string(s);
}

Result<uint64_t> GgufFile::GetUInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (!v->is_integer()) return Mismatch(key, *v, "an unsigned integer");
  auto u = v->AsUInt();
  if (!u) return InvalidArgument("GGUF metadata key " + Quoted(key) + " is negative (" + std::to_string(*v->AsInt()) + ")");
  return *u;
}

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (!v->is_integer()) return Mismatch(key, *v, "an integer");
  auto i = v->AsInt();
  if (!i) return InvalidArgument("GGUF metadata key " + Quoted(key) + " is too large (" + U64(*v->AsUInt()) + ")");
  return *i;
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  auto d = v->AsDouble();
  if (!d) return Mismatch(key, *v, "a number");
  return *d;
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindTyped(key, GgufValueType::kBool));
  return *v->AsBool();
}

Result<std::span<const std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindArray(key, "array of string"));
  if (v->element_type() != GgufValueType::kString) return Mismatch(key, *v, "array of string");
  return std::span<const std::string_view>(strings_.data() + v->first_, v->array_size());
}

Result<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindArray(key, "array of integers"));
  if (!IsIntegerType(v->element_type())) return Mismatch(key, *v, "array of integers");
  std::vector<int64_t> out(v->array_size());
  for (uint64_t i = 0; i < out.size(); ++i) {
    if (v->element_type() == GgufValueType::kU64 && v->UIntBitsAt(i) > static_cast<uint64_t>(INT64_MAX))
      return InvalidArgument("GGUF metadata key " + Quoted(key) + " element " + U64(i) + " is too large");
    out[i] = v->IntAt(i);
  }
  return out;
}

Result<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(std::vector<int64_t> wide, GetIntArray(key));
  std::vector<int32_t> out(wide.size());
  for (size_t i = 0; i < wide.size(); ++i) {
    if (wide[i] < INT32_MIN || wide[i] > INT32_MAX)
      return InvalidArgument("GGUF metadata key " + Quoted(key) + " element " + U64(i) + " (" +
                             std::to_string(wide[i]) + ") does not fit in i32");
    out[i] = static_cast<int32_t>(wide[i]);
  }
  return out;
}

Result<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindArray(key, "array of f32"));
  if (v->element_type() != GgufValueType::kF32) return Mismatch(key, *v, "array of f32");
  std::vector<float> out(v->array_size());
  if (!out.empty()) std::memcpy(out.data(), v->raw_elements().data(), out.size() * sizeof(float));
  return out;
}

Result<std::vector<double>> GgufFile::GetFloatArray(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindArray(key, "array of numbers"));
  const GgufValueType et = v->element_type();
  if (!IsIntegerType(et) && et != GgufValueType::kF32 && et != GgufValueType::kF64)
    return Mismatch(key, *v, "array of numbers");
  std::vector<double> out(v->array_size());
  for (uint64_t i = 0; i < out.size(); ++i) out[i] = v->DoubleAt(i);
  return out;
}

Result<std::vector<bool>> GgufFile::GetBoolArray(std::string_view key) const {
  LSERVE_ASSIGN_OR_RETURN(const GgufValue* v, FindArray(key, "array of bool"));
  if (v->element_type() != GgufValueType::kBool) return Mismatch(key, *v, "array of bool");
  std::vector<bool> out(v->array_size());
  for (uint64_t i = 0; i < out.size(); ++i) out[i] = v->raw_elements()[i] != 0;
  return out;
}

}  // namespace lserve
