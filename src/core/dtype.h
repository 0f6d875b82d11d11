// Element types of stored tensors and the exact scalar conversions between
// them. Conversions are IEEE-exact (f16->f32 and bf16->f32 are lossless);
// f32->f16/bf16 round to nearest even, as numpy / torch do.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace lserve {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kF64,
  kI8,
  kI16,
  kI32,
  kI64,
  kU8,
  kBool,
  // GGUF block-quantized types: elements come in fixed-size blocks.
  kQ8_0,  // 32 elements: f16 scale + 32 x i8                    = 34 bytes
  kQ4_0,  // 32 elements: f16 scale + 16 bytes of nibbles        = 18 bytes
  kQ4_1,  // 32 elements: f16 scale, f16 min + 16 bytes nibbles  = 20 bytes
  kQ4_K,  // 256 elements                                        = 144 bytes
  kQ6_K,  // 256 elements                                        = 210 bytes
};

std::string_view DTypeName(DType t);            // "F32", "BF16", "Q4_1", ...
std::optional<DType> DTypeFromName(std::string_view name);  // inverse of DTypeName

// Elements per block (1 for plain types) and bytes per block.
int64_t DTypeBlockElems(DType t);
int64_t DTypeBlockBytes(DType t);
bool DTypeIsQuantized(DType t);

// Bytes for n elements; nullopt when n is not a whole number of blocks or the
// product overflows.
std::optional<uint64_t> DTypeBytesFor(DType t, uint64_t n_elems);

inline float F32FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t BitsFromF32(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

inline float BF16ToF32(uint16_t h) { return F32FromBits(static_cast<uint32_t>(h) << 16); }

inline uint16_t F32ToBF16(float f) {
  uint32_t b = BitsFromF32(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);  // quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(b >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

}  // namespace lserve
