// .npy files (NumPy's array format, versions 1.0 / 2.0 / 3.0) for the two
// element types the engine exchanges with Python: little-endian float32
// ('<f4') and int32 ('<i4'), C order only.
//
// Layout: "\x93NUMPY", major, minor, header length (u16 for 1.0, u32 for
// 2.0/3.0, little-endian), then an ASCII dict such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (11, 49152), }
// padded with spaces and a final '\n', then the raw elements.
// Everything is validated: the magic, the version, the dict's three keys and
// nothing else, the shape (non-negative, product without overflow) and that
// the data is exactly shape-product elements long.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace lserve {

template <typename T>
struct NpyArray {
  std::vector<int64_t> shape;  // outermost first; {} for a 0-d array (one element)
  std::vector<T> data;         // C order, shape-product elements

  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Parse from bytes / read from a file. InvalidArgument for malformed files
// and for another element type or Fortran order; IoError when the file
// cannot be read.
Result<NpyArray<float>> ParseNpyF32(std::span<const uint8_t> bytes);
Result<NpyArray<int32_t>> ParseNpyI32(std::span<const uint8_t> bytes);
Result<NpyArray<float>> ReadNpyF32(const std::string& path);
Result<NpyArray<int32_t>> ReadNpyI32(const std::string& path);

// Serialise as version 1.0 (2.0 when the header does not fit 1.0's u16
// length), header padded so that the data starts at a multiple of 64 bytes,
// as numpy writes it. InvalidArgument when data.size() != shape product or a
// dimension is negative.
Result<std::vector<uint8_t>> EncodeNpyF32(std::span<const float> data, std::span<const int64_t> shape);
Result<std::vector<uint8_t>> EncodeNpyI32(std::span<const int32_t> data, std::span<const int64_t> shape);
Status WriteNpyF32(const std::string& path, std::span<const float> data, std::span<const int64_t> shape);
Status WriteNpyI32(const std::string& path, std::span<const int32_t> data, std::span<const int64_t> shape);

}  // namespace lserve
