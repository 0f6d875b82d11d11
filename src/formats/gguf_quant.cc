#include "formats/gguf_quant.h"

#include <cstring>
#include <string>

namespace lserve {
namespace {

inline float LoadF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}

void RowF32(const uint8_t* src, int64_t n, float* dst) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void RowF16(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = LoadF16(src + 2 * i);
}

void RowBF16(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = BF16ToF32(h);
  }
}

void RowQ8_0(const uint8_t* src, int64_t n_blocks, float* dst) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 34, dst += 32) {
    const float d = LoadF16(src);
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(q[j]) * d;
  }
}

void RowQ4_0(const uint8_t* src, int64_t n_blocks, float* dst) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 18, dst += 32) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
      dst[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void RowQ4_1(const uint8_t* src, int64_t n_blocks, float* dst) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 20, dst += 32) {
    const float d = LoadF16(src);
    const float m = LoadF16(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      const float lo = static_cast<float>(qs[j] & 0x0f) * d;
      const float hi = static_cast<float>(qs[j] >> 4) * d;
      dst[j] = lo + m;
      dst[j + 16] = hi + m;
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K block, packed in 12
// bytes: j < 4 in the low 6 bits of bytes j and j+4; j >= 4 split between the
// nibbles of byte j+4 and the top 2 bits of bytes j-4 and j.
inline void Q4KScaleMin(int j, const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

void RowQ4_K(const uint8_t* src, int64_t n_blocks, float* dst) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 144) {
    const float d = LoadF16(src);
    const float dmin = LoadF16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* q = src + 16;
    // 4 groups of 64 elements: 32 low nibbles (sub-block 2g), then 32 high
    // nibbles (sub-block 2g+1) of the same 32 bytes.
    for (int g = 0; g < 4; ++g, q += 32) {
      uint8_t sc, mn;
      Q4KScaleMin(2 * g, scales, &sc, &mn);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(mn);
      Q4KScaleMin(2 * g + 1, scales, &sc, &mn);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) {
        const float p = d1 * static_cast<float>(q[l] & 0x0f);
        *dst++ = p - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const float p = d2 * static_cast<float>(q[l] >> 4);
        *dst++ = p - m2;
      }
    }
  }
}

void RowQ6_K(const uint8_t* src, int64_t n_blocks, float* dst) {
  for (int64_t b = 0; b < n_blocks; ++b, src += 210) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(src + 192);
    const float d = LoadF16(src + 208);
    // 2 halves of 128 elements; in each, element l + 32k (l < 32, k < 4)
    // takes 4 low bits from ql and 2 high bits from qh[l] (bits 2k..2k+1).
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, dst += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        dst[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        dst[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        dst[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        dst[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace

bool CanDequantize(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ6_K: return true;
    default: return false;
  }
}

Status DequantizeRow(DType type, const uint8_t* src, int64_t n, float* dst) {
  if (!CanDequantize(type))
    return Unimplemented("dequantization of " + std::string(DTypeName(type)) + " to f32 is not implemented");
  const int64_t block = DTypeBlockElems(type);
  if (n < 0 || n % block != 0)
    return InvalidArgument("cannot dequantize " + std::to_string(n) + " elements of " +
                           std::string(DTypeName(type)) + ": not a multiple of the block size " +
                           std::to_string(block));
  const int64_t blocks = n / block;
  switch (type) {
    case DType::kF32: RowF32(src, n, dst); break;
    case DType::kF16: RowF16(src, n, dst); break;
    case DType::kBF16: RowBF16(src, n, dst); break;
    case DType::kQ8_0: RowQ8_0(src, blocks, dst); break;
    case DType::kQ4_0: RowQ4_0(src, blocks, dst); break;
    case DType::kQ4_1: RowQ4_1(src, blocks, dst); break;
    case DType::kQ4_K: RowQ4_K(src, blocks, dst); break;
    case DType::kQ6_K: RowQ6_K(src, blocks, dst); break;
    default: break;
  }
  return Status::Ok();
}

Result<std::vector<float>> DequantizeTensor(const TensorInfo& tensor) {
  if (!CanDequantize(tensor.dtype))
    return Unimplemented("tensor '" + tensor.name + "' has type " + std::string(DTypeName(tensor.dtype)) +
                         ", which cannot be dequantized to f32");
  int64_t n = 1;
  for (int64_t d : tensor.shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      return InvalidArgument("tensor '" + tensor.name + "' has an invalid shape");
  }
  const auto bytes = DTypeBytesFor(tensor.dtype, static_cast<uint64_t>(n));
  if (!bytes || *bytes != tensor.data.size())
    return InvalidArgument("tensor '" + tensor.name + "' has " + std::to_string(tensor.data.size()) +
                           " bytes, which does not match its shape and type " +
                           std::string(DTypeName(tensor.dtype)));
  std::vector<float> out(static_cast<size_t>(n));
  LSERVE_RETURN_IF_ERROR(DequantizeRow(tensor.dtype, tensor.data.data(), n, out.data()));
  return out;
}

}  // namespace lserve
