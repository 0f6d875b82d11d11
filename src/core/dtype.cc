#include "core/dtype.h"

#include <array>
#include <cmath>

namespace lserve {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
};

constexpr std::array<DTypeInfo, 15> kInfos = {{
    {DType::kF32, "F32", 1, 4},
    {DType::kF16, "F16", 1, 2},
    {DType::kBF16, "BF16", 1, 2},
    {DType::kF64, "F64", 1, 8},
    {DType::kI8, "I8", 1, 1},
    {DType::kI16, "I16", 1, 2},
    {DType::kI32, "I32", 1, 4},
    {DType::kI64, "I64", 1, 8},
    {DType::kU8, "U8", 1, 1},
    {DType::kBool, "BOOL", 1, 1},
    {DType::kQ8_0, "Q8_0", 32, 34},
    {DType::kQ4_0, "Q4_0", 32, 18},
    {DType::kQ4_1, "Q4_1", 32, 20},
    {DType::kQ4_K, "Q4_K", 256, 144},
    {DType::kQ6_K, "Q6_K", 256, 210},
}};

const DTypeInfo& Info(DType t) {
  for (const auto& i : kInfos)
    if (i.type == t) return i;
  return kInfos[0];
}

}  // namespace

std::string_view DTypeName(DType t) { return Info(t).name; }

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& i : kInfos)
    if (i.name == name) return i.type;
  return std::nullopt;
}

int64_t DTypeBlockElems(DType t) { return Info(t).block_elems; }
int64_t DTypeBlockBytes(DType t) { return Info(t).block_bytes; }
bool DTypeIsQuantized(DType t) { return Info(t).block_elems > 1; }

std::optional<uint64_t> DTypeBytesFor(DType t, uint64_t n_elems) {
  const auto be = static_cast<uint64_t>(Info(t).block_elems);
  const auto bb = static_cast<uint64_t>(Info(t).block_bytes);
  if (n_elems % be != 0) return std::nullopt;
  const uint64_t blocks = n_elems / be;
  if (blocks != 0 && bb > UINT64_MAX / blocks) return std::nullopt;
  return blocks * bb;
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return F32FromBits(sign);
    // Subnormal: normalise.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    mant &= 0x3ffu;
    return F32FromBits(sign | (static_cast<uint32_t>(112 - e) << 23) | (mant << 13));
  }
  if (exp == 31) return F32FromBits(sign | 0x7f800000u | (mant << 13));
  return F32FromBits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t F32ToF16(float f) {
  const uint32_t b = BitsFromF32(f);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t abs = b & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflow (rounds to inf) or inf
  if (abs < 0x38800000u) {                        // subnormal f16 or zero
    // value = abs_f * 2^24 rounded to nearest even integer mantissa.
    const float v = F32FromBits(abs) * 16777216.0f;  // exact scaling by 2^24
    const float r = std::nearbyint(v);               // default mode: nearest even
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t m = abs + 0xfffu + ((abs >> 13) & 1u);  // round mantissa to 10 bits, nearest even
  m -= 0x38000000u;                                // rebias exponent 127 -> 15
  return sign | static_cast<uint16_t>(m >> 13);
}

}  // namespace lserve
