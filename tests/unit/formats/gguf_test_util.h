// A small GGUF writer for tests: builds valid files and, through its
// overrides, every kind of corrupt one.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lserve::testing {

// Little-endian byte assembly.
class GgufBytes {
 public:
  template <typename T>
  GgufBytes& Put(T v) {
    const size_t at = b_.size();
    b_.resize(at + sizeof(T));
    std::memcpy(b_.data() + at, &v, sizeof(T));
    return *this;
  }
  GgufBytes& Str(std::string_view s) {
    Put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& Raw(const std::vector<uint8_t>& r) {
    b_.insert(b_.end(), r.begin(), r.end());
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return b_; }
  std::vector<uint8_t> take() { return std::move(b_); }

 private:
  std::vector<uint8_t> b_;
};

// GGUF value type ids.
enum : uint32_t {
  kGU8 = 0, kGI8, kGU16, kGI16, kGU32, kGI32, kGF32, kGBool, kGString, kGArray, kGU64, kGI64, kGF64,
};

// One encoded metadata entry: key, type, value bytes.
inline std::vector<uint8_t> Kv(std::string_view key, uint32_t type, const std::vector<uint8_t>& value) {
  return GgufBytes().Str(key).Put<uint32_t>(type).Raw(value).take();
}
template <typename T>
std::vector<uint8_t> KvScalar(std::string_view key, uint32_t type, T v) {
  return Kv(key, type, GgufBytes().Put<T>(v).take());
}
inline std::vector<uint8_t> KvString(std::string_view key, std::string_view v) {
  return Kv(key, kGString, GgufBytes().Str(v).take());
}
template <typename T>
std::vector<uint8_t> KvArray(std::string_view key, uint32_t elem_type, const std::vector<T>& v) {
  GgufBytes b;
  b.Put<uint32_t>(elem_type).Put<uint64_t>(v.size());
  for (const T& x : v) b.Put<T>(x);
  return Kv(key, kGArray, b.take());
}
inline std::vector<uint8_t> KvStringArray(std::string_view key, const std::vector<std::string>& v) {
  GgufBytes b;
  b.Put<uint32_t>(kGString).Put<uint64_t>(v.size());
  for (const auto& s : v) b.Str(s);
  return Kv(key, kGArray, b.take());
}

struct GgufTestTensor {
  std::string name = {};
  uint32_t type = 0;              // ggml type id
  std::vector<int64_t> ne = {};   // innermost first
  std::vector<uint8_t> data = {}; // written as is (its size need not match)
  std::optional<uint64_t> offset = {};  // default: placed after the previous one
  std::optional<uint32_t> n_dims = {};  // default: ne.size()
};

struct GgufTestFile {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::vector<std::vector<uint8_t>> kvs;
  std::vector<GgufTestTensor> tensors;
  uint32_t alignment = 32;  // for the data section padding and default offsets
  std::optional<uint64_t> n_kv;       // overrides the count written
  std::optional<uint64_t> n_tensors;  // overrides the count written
  int64_t trim_end = 0;               // bytes cut from the end of the file

  std::vector<uint8_t> Build() const {
    GgufBytes b;
    std::vector<uint8_t> magic_bytes(magic.begin(), magic.end());
    b.Raw(magic_bytes).Put<uint32_t>(version);
    b.Put<uint64_t>(n_tensors.value_or(tensors.size()));
    b.Put<uint64_t>(n_kv.value_or(kvs.size()));
    for (const auto& kv : kvs) b.Raw(kv);
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = Pad(off + t.data.size());
      b.Str(t.name).Put<uint32_t>(t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (int64_t d : t.ne) b.Put<int64_t>(d);
      b.Put<uint32_t>(t.type).Put<uint64_t>(off);
    }
    std::vector<uint8_t> out = b.take();
    if (!tensors.empty()) out.resize(Pad(out.size()), 0);
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& d = tensors[i].data;
      if (offsets[i] > (1u << 26)) continue;  // a hostile offset: no data written there
      if (out.size() < data_start + offsets[i] + d.size()) out.resize(data_start + offsets[i] + d.size(), 0);
      std::copy(d.begin(), d.end(), out.begin() + static_cast<std::ptrdiff_t>(data_start + offsets[i]));
    }
    if (!tensors.empty()) out.resize(Pad(out.size()), 0);
    out.resize(out.size() - static_cast<size_t>(std::min<int64_t>(trim_end, static_cast<int64_t>(out.size()))));
    return out;
  }

 private:
  uint64_t Pad(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }
};

// Bytes of n elements of a plain type, filled with a pattern.
inline std::vector<uint8_t> PatternBytes(size_t n, uint8_t seed = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

}  // namespace lserve::testing
