// Builds safetensors files byte by byte for the tests: valid ones like the
// safetensors writers make them, and any corruption a test spells out.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lserve::testing {

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline size_t StDtypeSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  return 1;
}

// A tensor of `dtype` and `shape` filled with random bytes.
inline StTensor RandomTensor(std::mt19937& rng, std::string name, std::string dtype, std::vector<int64_t> shape) {
  size_t n = StDtypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  std::vector<uint8_t> bytes(n);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return {std::move(name), std::move(dtype), std::move(shape), std::move(bytes)};
}

// The 8-byte little-endian length, the header text, the data.
inline std::vector<uint8_t> StRawFile(const std::string& header, const std::vector<uint8_t>& data,
                                      uint64_t length_field) {
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(length_field >> (8 * i)));
  for (char c : header) out.push_back(static_cast<uint8_t>(c));
  for (uint8_t b : data) out.push_back(b);
  return out;
}
inline std::vector<uint8_t> StRawFile(const std::string& header, const std::vector<uint8_t>& data) {
  return StRawFile(header, data, header.size());
}

// A valid file: tensors laid out in the given order, the header padded with
// spaces to a multiple of 8 as the safetensors writers do.
inline std::vector<uint8_t> StBuild(const std::vector<StTensor>& tensors,
                                    const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint8_t> data;
  for (const StTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return StRawFile(text, data);
}

inline void StWriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void StWriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// A fresh empty folder under the test temp dir, removed on destruction.
class StTempFolder {
 public:
  explicit StTempFolder(const std::string& tag) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("lserve_" + tag + "_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~StTempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  StTempFolder(const StTempFolder&) = delete;
  StTempFolder& operator=(const StTempFolder&) = delete;
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace lserve::testing
