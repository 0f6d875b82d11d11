// safetensors files, memory-mapped and validated before any tensor is used.
//
// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
//  ..., "__metadata__": {"k": "v"}}, then the data section, to which the
// offsets are relative.
//
// The checks mirror the safetensors crate (read_metadata + Metadata::validate)
// and add what RELIABILITY.md A1-A4 asks beyond it:
//  - N <= 100,000,000 and 8 + N <= file size, checked before anything is
//    read or allocated from N (the header is parsed in place);
//  - the header starts with '{' (the crate lets serde skip leading
//    whitespace; no writer emits any) and may end with whitespace padding
//    (writers pad to a multiple of 8 with spaces);
//  - valid UTF-8, strict JSON, no key twice in any object;
//  - "__metadata__" is null or an object of strings;
//  - each entry has a known dtype, a shape of non-negative integers whose
//    product (and its size in bytes) does not overflow, and two offsets;
//  - sorted by offsets, the tensors tile the data section exactly: each
//    begins where the previous one ends (the first at 0), begin <= end,
//    end - begin == elements x dtype size, and the last end is the size of
//    the data section (the crate's MetadataIncompleteBuffer).
// Every error names the tensor and the defect.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "formats/tensor_info.h"

namespace lserve {

constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // the crate's MAX_HEADER_SIZE

// One header entry; offsets are relative to the data section.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;                    // N
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<SafetensorsEntry> tensors;        // sorted by (begin, end)

  uint64_t data_offset() const { return 8 + header_bytes; }
};

// Parses and validates the header of a whole safetensors file given as bytes
// (the length prefix, the JSON and the data section: the last check needs the
// file size). Never reads outside `file`, never throws.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const uint8_t> file);

// A validated, memory-mapped safetensors file. TensorInfo::data points into
// the mapping, which lives as long as any copy of this object (or of
// mapping()). Tensor data is not necessarily aligned to its element type.
class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // In file order (sorted by offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when the file has no tensor of that name.
  const TensorInfo* Find(std::string_view name) const;
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
};

}  // namespace lserve
