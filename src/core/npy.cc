#include "core/npy.h"

#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include "core/mapped_file.h"

namespace lserve {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kMaxHeaderBytes = 1u << 16;  // real headers are < 200 bytes
constexpr int64_t kMaxDims = 32;              // numpy's NPY_MAXDIMS

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// A cursor over the header dict: a Python literal of the restricted form
// numpy writes ({'key': value, ...} with string, bool and int-tuple values).
class DictReader {
 public:
  explicit DictReader(std::string_view s) : s_(s) {}

  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool ConsumeWord(std::string_view w) {
    SkipSpace();
    if (s_.substr(i_, w.size()) == w) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  std::optional<std::string> String() {
    SkipSpace();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return std::nullopt;
    const char quote = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      if (s_[i_] == '\\') return std::nullopt;  // numpy never escapes in these fields
      out.push_back(s_[i_++]);
    }
    if (i_ >= s_.size()) return std::nullopt;
    ++i_;
    return out;
  }
  std::optional<int64_t> Int() {
    SkipSpace();
    const size_t start = i_;
    int64_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      const int digit = s_[i_] - '0';
      if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) return std::nullopt;
      v = v * 10 + digit;
      ++i_;
    }
    if (i_ == start) return std::nullopt;
    // numpy may write Python longs as "3L" in old files.
    if (i_ < s_.size() && s_[i_] == 'L') ++i_;
    return v;
  }
  bool AtEnd() {
    SkipSpace();
    return i_ == s_.size();
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

Result<std::vector<int64_t>> ParseShape(DictReader& r) {
  if (!r.Consume('(')) return InvalidArgument("npy header: 'shape' must be a tuple");
  std::vector<int64_t> shape;
  if (r.Consume(')')) return shape;
  while (true) {
    auto d = r.Int();
    if (!d) return InvalidArgument("npy header: 'shape' holds a non-integer or negative dimension");
    shape.push_back(*d);
    if (static_cast<int64_t>(shape.size()) > kMaxDims) return InvalidArgument("npy header: too many dimensions");
    if (r.Consume(')')) break;
    if (!r.Consume(',')) return InvalidArgument("npy header: malformed 'shape' tuple");
    if (r.Consume(')')) break;  // trailing comma: "(5,)"
  }
  return shape;
}

Result<NpyHeader> ParseHeaderDict(std::string_view text) {
  DictReader r(text);
  NpyHeader h;
  bool have_descr = false, have_fortran = false, have_shape = false;
  if (!r.Consume('{')) return InvalidArgument("npy header is not a dict");
  while (!r.Consume('}')) {
    auto key = r.String();
    if (!key) return InvalidArgument("npy header: expected a quoted key");
    if (!r.Consume(':')) return InvalidArgument("npy header: expected ':' after '" + *key + "'");
    if (*key == "descr" && !have_descr) {
      auto v = r.String();
      if (!v) return InvalidArgument("npy header: 'descr' must be a string");
      h.descr = *v;
      have_descr = true;
    } else if (*key == "fortran_order" && !have_fortran) {
      if (r.ConsumeWord("True")) {
        h.fortran_order = true;
      } else if (r.ConsumeWord("False")) {
        h.fortran_order = false;
      } else {
        return InvalidArgument("npy header: 'fortran_order' must be True or False");
      }
      have_fortran = true;
    } else if (*key == "shape" && !have_shape) {
      LSERVE_ASSIGN_OR_RETURN(h.shape, ParseShape(r));
      have_shape = true;
    } else {
      return InvalidArgument("npy header: unexpected or repeated key '" + *key + "'");
    }
    if (r.Consume('}')) break;
    if (!r.Consume(',')) return InvalidArgument("npy header: expected ',' between entries");
  }
  if (!r.AtEnd()) return InvalidArgument("npy header: trailing bytes after the dict");
  if (!have_descr || !have_fortran || !have_shape)
    return InvalidArgument("npy header: 'descr', 'fortran_order' and 'shape' are all required");
  return h;
}

template <typename T>
Result<NpyArray<T>> ParseNpy(std::span<const uint8_t> bytes, std::string_view want_descr) {
  if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    return InvalidArgument("not a .npy file (bad magic)");
  const uint8_t major = bytes[6];
  size_t header_len = 0;
  size_t prefix = 0;
  if (major == 1) {
    header_len = bytes[8] | (static_cast<size_t>(bytes[9]) << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return InvalidArgument(".npy file truncated in its header length");
    header_len = bytes[8] | (static_cast<size_t>(bytes[9]) << 8) | (static_cast<size_t>(bytes[10]) << 16) |
                 (static_cast<size_t>(bytes[11]) << 24);
    prefix = 12;
  } else {
    return InvalidArgument(".npy version " + std::to_string(major) + " is not supported");
  }
  if (header_len > kMaxHeaderBytes) return InvalidArgument(".npy header is implausibly long");
  if (bytes.size() - prefix < header_len) return InvalidArgument(".npy file truncated in its header");
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return InvalidArgument(".npy header is not ASCII");
  }
  LSERVE_ASSIGN_OR_RETURN(NpyHeader h, ParseHeaderDict(text));
  if (h.descr != want_descr) {
    return InvalidArgument(".npy element type '" + h.descr + "' where '" + std::string(want_descr) +
                           "' was expected");
  }
  if (h.fortran_order) return InvalidArgument(".npy array in Fortran order; C order expected");

  uint64_t count = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && count > std::numeric_limits<uint64_t>::max() / sizeof(T) / static_cast<uint64_t>(d))
      return InvalidArgument(".npy shape overflows");
    count *= static_cast<uint64_t>(d);
  }
  const size_t data_at = prefix + header_len;
  const uint64_t data_bytes = bytes.size() - data_at;
  if (data_bytes != count * sizeof(T)) {
    return InvalidArgument(".npy data holds " + std::to_string(data_bytes) + " bytes where the shape needs " +
                           std::to_string(count * sizeof(T)));
  }
  NpyArray<T> out;
  out.shape = std::move(h.shape);
  out.data.resize(count);
  if (count) std::memcpy(out.data.data(), bytes.data() + data_at, count * sizeof(T));
  return out;
}

template <typename T>
Result<NpyArray<T>> ReadNpy(const std::string& path, std::string_view descr) {
  auto map = MappedFile::Open(path);
  if (!map.ok()) return map.status();
  auto arr = ParseNpy<T>(map->bytes(), descr);
  if (!arr.ok()) return arr.status().Annotate(path);
  return arr;
}

template <typename T>
Result<std::vector<uint8_t>> EncodeNpy(std::span<const T> data, std::span<const int64_t> shape,
                                       std::string_view descr) {
  if (static_cast<int64_t>(shape.size()) > kMaxDims) return InvalidArgument("npy: too many dimensions");
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("npy: negative dimension");
    if (d != 0 && count > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return InvalidArgument("npy: shape overflows");
    count *= static_cast<uint64_t>(d);
  }
  if (count != data.size()) {
    return InvalidArgument("npy: " + std::to_string(data.size()) + " elements for a shape of " +
                           std::to_string(count));
  }
  std::string dict = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Pad with spaces so that prefix + header (ending in '\n') is a multiple of 64.
  size_t prefix = 10;
  uint8_t major = 1;
  size_t total = ((prefix + dict.size() + 1 + 63) / 64) * 64;
  if (total - prefix > 0xffff) {
    prefix = 12;
    major = 2;
    total = ((prefix + dict.size() + 1 + 63) / 64) * 64;
  }
  const size_t header_len = total - prefix;
  dict.append(header_len - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::vector<uint8_t> out(total + data.size() * sizeof(T));
  std::memcpy(out.data(), kMagic, kMagicLen);
  out[6] = major;
  out[7] = 0;
  for (size_t b = 0; b < prefix - 8; ++b) out[8 + b] = static_cast<uint8_t>(header_len >> (8 * b));
  std::memcpy(out.data() + prefix, dict.data(), dict.size());
  if (!data.empty()) std::memcpy(out.data() + total, data.data(), data.size() * sizeof(T));
  return out;
}

Status WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return IoError("cannot open '" + path + "' for writing");
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size() || !closed) return IoError("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace

Result<NpyArray<float>> ParseNpyF32(std::span<const uint8_t> bytes) { return ParseNpy<float>(bytes, "<f4"); }
Result<NpyArray<int32_t>> ParseNpyI32(std::span<const uint8_t> bytes) { return ParseNpy<int32_t>(bytes, "<i4"); }
Result<NpyArray<float>> ReadNpyF32(const std::string& path) { return ReadNpy<float>(path, "<f4"); }
Result<NpyArray<int32_t>> ReadNpyI32(const std::string& path) { return ReadNpy<int32_t>(path, "<i4"); }

Result<std::vector<uint8_t>> EncodeNpyF32(std::span<const float> data, std::span<const int64_t> shape) {
  return EncodeNpy<float>(data, shape, "<f4");
}
Result<std::vector<uint8_t>> EncodeNpyI32(std::span<const int32_t> data, std::span<const int64_t> shape) {
  return EncodeNpy<int32_t>(data, shape, "<i4");
}

Status WriteNpyF32(const std::string& path, std::span<const float> data, std::span<const int64_t> shape) {
  LSERVE_ASSIGN_OR_RETURN(auto bytes, EncodeNpyF32(data, shape));
  return WriteBytes(path, bytes);
}
Status WriteNpyI32(const std::string& path, std::span<const int32_t> data, std::span<const int64_t> shape) {
  LSERVE_ASSIGN_OR_RETURN(auto bytes, EncodeNpyI32(data, shape));
  return WriteBytes(path, bytes);
}

}  // namespace lserve
