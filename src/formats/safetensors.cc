#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "formats/message_text.h"

namespace lserve {
namespace {

using formats_detail::Quoted;
using formats_detail::ShapeText;

using json = nlohmann::json;

// numpy's limit on the number of dimensions; the crate has none, but a
// 100 MB header of one tensor's shape would otherwise become 400 MB of int64.
constexpr size_t kMaxRank = 64;

std::string TensorLabel(std::string_view name) { return "tensor " + Quoted(name); }

// The dtype names of the safetensors format. Those DType can hold are read;
// the others are known but refused with a clear message.
struct DtypeLookup {
  std::optional<DType> dtype;
  bool known = false;
};

DtypeLookup LookUpDtype(std::string_view name) {
  static constexpr std::pair<std::string_view, DType> kReadable[] = {
      {"F64", DType::kF64}, {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16}, {"I8", DType::kI8},
      {"U8", DType::kU8},   {"BOOL", DType::kBool},
  };
  static constexpr std::string_view kUnreadable[] = {
      "F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
      "U16", "U32", "U64", "C64",
  };
  for (const auto& [n, t] : kReadable)
    if (n == name) return {t, true};
  for (std::string_view n : kUnreadable)
    if (n == name) return {std::nullopt, true};
  return {};
}

// Builds the header entries from SAX events without a JSON DOM, so that
// memory stays proportional to what is kept (names and shapes), duplicate
// keys are seen, and a malformed entry is refused as soon as it appears.
class HeaderReader : public nlohmann::json_sax<json> {
 public:
  explicit HeaderReader(SafetensorsHeader* out) : out_(out) {}

  bool null() override { return OnValue(Kind::kNull); }
  bool boolean(bool) override { return OnValue(Kind::kBool); }
  bool number_integer(number_integer_t) override { return OnValue(Kind::kNegative); }
  bool number_unsigned(number_unsigned_t v) override { return OnValue(Kind::kUnsigned, v); }
  bool number_float(number_float_t, const string_t&) override { return OnValue(Kind::kFloat); }
  bool string(string_t& s) override { return OnValue(Kind::kString, 0, &s); }
  bool binary(binary_t&) override { return OnValue(Kind::kBinary); }
  bool start_object(std::size_t) override { return OnValue(Kind::kObject); }
  bool start_array(std::size_t) override { return OnValue(Kind::kArray); }
  bool end_object() override { return OnEnd(); }
  bool end_array() override { return OnEnd(); }
  bool key(string_t& k) override { return OnKey(k); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    return Fail("invalid JSON (byte " + std::to_string(position) + " of the header): " + ex.what());
  }

  Status status() const { return error_.empty() ? Status::Ok() : Status(code_, error_); }

 private:
  enum class Kind { kNull, kBool, kNegative, kUnsigned, kFloat, kString, kBinary, kObject, kArray };
  enum class Frame { kTop, kMetadata, kTensor, kShape, kOffsets, kSkip };

  static const char* KindName(Kind k) {
    switch (k) {
      case Kind::kNull: return "null";
      case Kind::kBool: return "a boolean";
      case Kind::kNegative: return "a negative integer";
      case Kind::kUnsigned: return "an integer";
      case Kind::kFloat: return "a non-integer number";
      case Kind::kString: return "a string";
      case Kind::kBinary: return "binary data";
      case Kind::kObject: return "an object";
      case Kind::kArray: return "a list";
    }
    return "a value";
  }

  bool Fail(std::string message, StatusCode code = StatusCode::kInvalidArgument) {
    if (error_.empty()) {
      error_ = std::move(message);
      code_ = code;
    }
    return false;
  }

  bool OnValue(Kind kind, uint64_t number = 0, std::string* text = nullptr) {
    const bool opens = kind == Kind::kObject || kind == Kind::kArray;
    if (frames_.empty()) {
      if (kind != Kind::kObject) return Fail(std::string("the header is ") + KindName(kind) + ", not a JSON object");
      frames_.push_back(Frame::kTop);
      return true;
    }
    switch (frames_.back()) {
      case Frame::kSkip:
        if (opens) frames_.push_back(Frame::kSkip);
        return true;
      case Frame::kTop:
        if (top_key_ == "__metadata__") {
          if (kind == Kind::kNull) return true;
          if (kind != Kind::kObject)
            return Fail(std::string("'__metadata__' must be an object of strings, got ") + KindName(kind));
          frames_.push_back(Frame::kMetadata);
          return true;
        }
        if (kind != Kind::kObject)
          return Fail(TensorLabel(top_key_) + ": the entry must be an object, got " + KindName(kind));
        pending_ = {};
        pending_.entry.name = top_key_;
        frames_.push_back(Frame::kTensor);
        return true;
      case Frame::kMetadata:
        if (kind != Kind::kString)
          return Fail("'__metadata__' value of " + Quoted(meta_key_) + " must be a string, got " + KindName(kind));
        out_->metadata[meta_key_] = std::move(*text);
        return true;
      case Frame::kTensor:
        return OnTensorField(kind, text);
      case Frame::kShape:
        if (kind != Kind::kUnsigned)
          return Fail(TensorLabel(pending_.entry.name) + ": 'shape' must hold non-negative integers, got " +
                      KindName(kind));
        if (number > static_cast<uint64_t>(INT64_MAX))
          return Fail(TensorLabel(pending_.entry.name) + ": dimension " + std::to_string(number) + " is too large");
        if (pending_.entry.shape.size() == kMaxRank)
          return Fail(TensorLabel(pending_.entry.name) + ": more than " + std::to_string(kMaxRank) + " dimensions");
        pending_.entry.shape.push_back(static_cast<int64_t>(number));
        return true;
      case Frame::kOffsets:
        if (kind != Kind::kUnsigned)
          return Fail(TensorLabel(pending_.entry.name) + ": 'data_offsets' must hold non-negative integers, got " +
                      KindName(kind));
        if (pending_.offsets_seen == 2)
          return Fail(TensorLabel(pending_.entry.name) + ": 'data_offsets' must hold exactly two integers");
        (pending_.offsets_seen == 0 ? pending_.entry.begin : pending_.entry.end) = number;
        ++pending_.offsets_seen;
        return true;
    }
    return true;
  }

  bool OnTensorField(Kind kind, std::string* text) {
    const std::string& name = pending_.entry.name;
    if (pending_.field == "dtype") {
      if (kind != Kind::kString) return Fail(TensorLabel(name) + ": 'dtype' must be a string, got " + KindName(kind));
      const DtypeLookup d = LookUpDtype(*text);
      if (!d.known) return Fail(TensorLabel(name) + ": unknown dtype " + Quoted(*text));
      if (!d.dtype.has_value())
        return Fail(TensorLabel(name) + ": dtype " + Quoted(*text) +
                        " is not supported (readable: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)",
                    StatusCode::kUnimplemented);
      pending_.entry.dtype = *d.dtype;
      return true;
    }
    if (pending_.field == "shape") {
      if (kind != Kind::kArray) return Fail(TensorLabel(name) + ": 'shape' must be a list, got " + KindName(kind));
      frames_.push_back(Frame::kShape);
      return true;
    }
    if (pending_.field == "data_offsets") {
      if (kind != Kind::kArray)
        return Fail(TensorLabel(name) + ": 'data_offsets' must be a list, got " + KindName(kind));
      frames_.push_back(Frame::kOffsets);
      return true;
    }
    // Other fields are ignored, as serde ignores unknown fields.
    if (kind == Kind::kObject || kind == Kind::kArray) frames_.push_back(Frame::kSkip);
    return true;
  }

  bool OnKey(const std::string& k) {
    switch (frames_.back()) {
      case Frame::kTop:
        if (!top_keys_.insert(k).second)
          return Fail("duplicate key: " + (k == "__metadata__" ? std::string("'__metadata__'") : TensorLabel(k)) +
                      " appears twice in the header");
        top_key_ = k;
        return true;
      case Frame::kMetadata:
        if (!meta_keys_.insert(k).second) return Fail("duplicate key: '__metadata__' has " + Quoted(k) + " twice");
        meta_key_ = k;
        return true;
      case Frame::kTensor: {
        int bit = k == "dtype" ? 1 : k == "shape" ? 2 : k == "data_offsets" ? 4 : 0;
        if (bit != 0 && (pending_.fields_seen & bit))
          return Fail("duplicate key: " + TensorLabel(pending_.entry.name) + " has " + Quoted(k) + " twice");
        pending_.fields_seen |= bit;
        pending_.field = k;
        return true;
      }
      default: return true;
    }
  }

  bool OnEnd() {
    const Frame f = frames_.back();
    frames_.pop_back();
    if (f == Frame::kOffsets && pending_.offsets_seen != 2)
      return Fail(TensorLabel(pending_.entry.name) + ": 'data_offsets' must hold exactly two integers");
    if (f != Frame::kTensor) return true;
    static constexpr std::pair<int, const char*> kRequired[] = {{1, "dtype"}, {2, "shape"}, {4, "data_offsets"}};
    for (const auto& [bit, field] : kRequired) {
      if (!(pending_.fields_seen & bit))
        return Fail(TensorLabel(pending_.entry.name) + ": missing '" + field + "'");
    }
    out_->tensors.push_back(std::move(pending_.entry));
    return true;
  }

  struct PendingTensor {
    SafetensorsEntry entry;
    std::string field;     // the key whose value comes next
    int fields_seen = 0;   // bits: dtype, shape, data_offsets
    int offsets_seen = 0;
  };

  SafetensorsHeader* out_;
  std::vector<Frame> frames_;
  std::unordered_set<std::string> top_keys_;
  std::unordered_set<std::string> meta_keys_;
  std::string top_key_;
  std::string meta_key_;
  PendingTensor pending_;
  std::string error_;
  StatusCode code_ = StatusCode::kOk;
};

// Metadata::validate of the crate, plus the size check of read_metadata.
Status ValidateLayout(const SafetensorsHeader& h, uint64_t data_size) {
  uint64_t cursor = 0;
  const std::string* previous = nullptr;
  for (const SafetensorsEntry& t : h.tensors) {
    const std::string label = TensorLabel(t.name);
    const std::string range = " (data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "])";
    if (t.end < t.begin) return InvalidArgument(label + ": data_offsets end is before begin" + range);
    if (t.begin > cursor) {
      if (previous == nullptr)
        return InvalidArgument("gap: the first " + std::to_string(t.begin) +
                               " bytes of the data section belong to no tensor; the first, " + label + ", begins at " +
                               std::to_string(t.begin));
      return InvalidArgument("gap: " + std::to_string(t.begin - cursor) + " bytes between " +
                             TensorLabel(*previous) + " (ends at " + std::to_string(cursor) + ") and " + label + range);
    }
    if (t.begin < cursor)
      return InvalidArgument("overlap: " + label + range + " overlaps " + TensorLabel(*previous) + ", which ends at " +
                             std::to_string(cursor));
    if (t.end > data_size)
      return InvalidArgument(label + ": data ends beyond the end of the file" + range + "; the data section holds " +
                             std::to_string(data_size) + " bytes");
    // Left to right with overflow checks, as the crate does; bounded by
    // INT64_MAX so that TensorInfo::num_elements() cannot overflow either.
    uint64_t elements = 1;
    for (int64_t d : t.shape) {
      const uint64_t u = static_cast<uint64_t>(d);
      if (u != 0 && elements > static_cast<uint64_t>(INT64_MAX) / u)
        return InvalidArgument(label + ": the element count of shape " + ShapeText(t.shape) + " overflows");
      elements *= u;
    }
    const std::optional<uint64_t> bytes = DTypeBytesFor(t.dtype, elements);
    if (!bytes.has_value())
      return InvalidArgument(label + ": the byte size of shape " + ShapeText(t.shape) + " in " +
                             std::string(DTypeName(t.dtype)) + " overflows");
    if (*bytes != t.end - t.begin)
      return InvalidArgument(label + ": shape " + ShapeText(t.shape) + " in " + std::string(DTypeName(t.dtype)) +
                             " needs " + std::to_string(*bytes) + " bytes but data_offsets span " +
                             std::to_string(t.end - t.begin) + range);
    cursor = t.end;
    previous = &t.name;
  }
  if (cursor != data_size)
    return InvalidArgument("incomplete metadata: the data section holds " + std::to_string(data_size) +
                           " bytes but the tensors cover " + std::to_string(cursor) + " (" +
                           std::to_string(data_size - cursor) + " trailing bytes are not indexed by the header)");
  return Status::Ok();
}

}  // namespace

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> file) {
  if (file.size() < 8)
    return InvalidArgument("header too small: the file has " + std::to_string(file.size()) +
                           " bytes, fewer than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  if (n > kSafetensorsMaxHeaderBytes)
    return InvalidArgument("header too large: the length field says " + std::to_string(n) + " bytes (limit " +
                           std::to_string(kSafetensorsMaxHeaderBytes) + ")");
  if (n > file.size() - 8)
    return InvalidArgument("invalid header length: the length field says " + std::to_string(n) +
                           " bytes but only " + std::to_string(file.size() - 8) + " follow it");
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), static_cast<size_t>(n));
  if (text.empty() || text.front() != '{') return InvalidArgument("invalid header: it does not start with '{'");
  if (!utf8::IsValid(text)) return InvalidArgument("invalid header: not valid UTF-8");
  // JSON has no raw NUL bytes; nlohmann's lexer would take one for the end of
  // the input and ignore what follows, where serde_json refuses the header.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    return InvalidArgument("invalid JSON: a NUL byte at byte " + std::to_string(nul) + " of the header");

  SafetensorsHeader header;
  header.header_bytes = n;
  HeaderReader reader(&header);
  try {
    const bool ok = json::sax_parse(text.begin(), text.end(), &reader, json::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/false);
    LSERVE_RETURN_IF_ERROR(reader.status());
    if (!ok) return InvalidArgument("invalid header: invalid JSON");
  } catch (const std::exception& e) {
    LSERVE_RETURN_IF_ERROR(reader.status());
    return InvalidArgument(std::string("invalid header: ") + e.what());
  }
  std::stable_sort(header.tensors.begin(), header.tensors.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  LSERVE_RETURN_IF_ERROR(ValidateLayout(header, file.size() - 8 - n));
  return header;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  LSERVE_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  auto mapping = std::make_shared<const MappedFile>(std::move(mapped));
  Result<SafetensorsHeader> header = ParseSafetensorsHeader(mapping->bytes());
  if (!header.ok()) return header.status().Annotate(path);

  SafetensorsFile file;
  file.path_ = path;
  file.mapping_ = mapping;
  file.metadata_ = std::move(header->metadata);
  file.tensors_.reserve(header->tensors.size());
  const uint8_t* data = mapping->data() + header->data_offset();
  for (SafetensorsEntry& e : header->tensors) {
    TensorInfo t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = std::span<const uint8_t>(data + e.begin, static_cast<size_t>(e.end - e.begin));
    t.file = path;
    file.index_.emplace(t.name, file.tensors_.size());
    file.tensors_.push_back(std::move(t));
  }
  return file;
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace lserve
