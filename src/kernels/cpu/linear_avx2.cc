// AVX2 weight loaders and the GEMV / tile-dequantization loops of the linear
// kernel. A loader turns the weights of one 32-element chunk of a row into 4
// f32 registers with the same float operations, in the same order, as
// DequantizeRow (formats/gguf_quant.cc), so the dequantized values are
// bit-identical to the reference's and only the summation order differs.
#include <immintrin.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/simd_avx2.h"

#pragma GCC target("avx2,fma,f16c")

namespace lserve::cpu_detail {
namespace {

inline float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __m256 U8x8ToF32(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
inline __m256 I8x8ToF32(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }

// The 16 unsigned bytes of `lo16` as 2 registers of f32 (elements 0-7, 8-15).
inline void U8x16ToF32(__m128i lo16, __m256* out) {
  out[0] = U8x8ToF32(lo16);
  out[1] = U8x8ToF32(_mm_srli_si128(lo16, 8));
}

// The 16 bytes of Q4_0 / Q4_1 nibbles (element j < 16 = low nibble of byte
// j, element 16 + j = its high nibble) as 4 vectors of f32 without byte
// shuffles: the bytes are broadcast to both 128-bit halves, so 32-bit lane i
// holds bytes 4(i%4) .. 4(i%4)+3; vector g shifts lanes 0-3 by 8g (low
// nibble of byte g) and lanes 4-7 by 8g+4 (its high nibble). The GEMV
// multiplies them with x permuted the same way (Nibbles16Element).
inline int Nibbles16Element(int g, int lane) { return lane < 4 ? 4 * lane + g : 16 + 4 * (lane - 4) + g; }

inline void Nibbles16Permuted(const uint8_t* qs, __m256* f) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i mask = _mm256_set1_epi32(0x0f);
  __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  const __m256i eight = _mm256_set1_epi32(8);
  for (int g = 0; g < 4; ++g, shift = _mm256_add_epi32(shift, eight)) {
    f[g] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(v, shift), mask));
  }
}

// Loaders: kBlockElems elements in kBlockBytes bytes, kBlockElems / 32 chunks.
// Begin(block) reads the block header; Load(c, w) fills w[0..3] with
// elements 32c .. 32c+31 of the block.

struct LoaderF32 {
  static constexpr int kBlockElems = 32, kBlockBytes = 128;
  const float* p;
  void Begin(const uint8_t* b) { p = reinterpret_cast<const float*>(b); }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) w[g] = _mm256_loadu_ps(p + 8 * g);
  }
  static float Scalar(const uint8_t* row, int64_t i) {
    float f;
    std::memcpy(&f, row + 4 * i, 4);
    return f;
  }
};

struct LoaderF16 {
  static constexpr int kBlockElems = 32, kBlockBytes = 64;
  const uint8_t* p;
  void Begin(const uint8_t* b) { p = b; }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) w[g] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * g)));
  }
  static float Scalar(const uint8_t* row, int64_t i) { return LoadHalf(row + 2 * i); }
};

struct LoaderBF16 {
  static constexpr int kBlockElems = 32, kBlockBytes = 64;
  const uint8_t* p;
  void Begin(const uint8_t* b) { p = b; }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) {
      const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * g)));
      w[g] = _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
  }
  static float Scalar(const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    return BF16ToF32(h);
  }
};

struct LoaderQ8_0 {  // x = q * d
  static constexpr int kBlockElems = 32, kBlockBytes = 34;
  const uint8_t* p;
  __m256 d;
  void Begin(const uint8_t* b) {
    p = b + 2;
    d = _mm256_set1_ps(LoadHalf(b));
  }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) {
      w[g] = _mm256_mul_ps(I8x8ToF32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * g))), d);
    }
  }
  static constexpr bool kHasOffset = false;
  static constexpr bool kPermuted = false;
  void LoadFactored(int, __m256* f, __m256* scale, float*) const {
    for (int g = 0; g < 4; ++g) f[g] = I8x8ToF32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * g)));
    scale[0] = scale[1] = d;
  }
};

struct LoaderQ4_0 {  // x = (nib - 8) * d; element j < 16: low nibble of qs[j], else high nibble of qs[j-16]
  static constexpr int kBlockElems = 32, kBlockBytes = 18;
  const uint8_t* p;
  __m256 d;
  void Begin(const uint8_t* b) {
    p = b + 2;
    d = _mm256_set1_ps(LoadHalf(b));
  }
  static constexpr bool kHasOffset = false;
  static constexpr bool kPermuted = true;
  static int Element(int g, int lane) { return Nibbles16Element(g, lane); }
  void LoadFactored(int, __m256* f, __m256* scale, float*) const {
    Nibbles16Permuted(p, f);
    const __m256 eight = _mm256_set1_ps(8.0f);
    for (int g = 0; g < 4; ++g) f[g] = _mm256_sub_ps(f[g], eight);
    scale[0] = scale[1] = d;
  }
  void Load(int c, __m256* w) const {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, mask), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), eight);
    w[0] = _mm256_mul_ps(I8x8ToF32(lo), d);
    w[1] = _mm256_mul_ps(I8x8ToF32(_mm_srli_si128(lo, 8)), d);
    w[2] = _mm256_mul_ps(I8x8ToF32(hi), d);
    w[3] = _mm256_mul_ps(I8x8ToF32(_mm_srli_si128(hi, 8)), d);
  }
};

struct LoaderQ4_1 {  // x = nib * d + m
  static constexpr int kBlockElems = 32, kBlockBytes = 20;
  const uint8_t* p;
  __m256 d, m;
  void Begin(const uint8_t* b) {
    p = b + 4;
    d = _mm256_set1_ps(LoadHalf(b));
    m = _mm256_set1_ps(LoadHalf(b + 2));
  }
  void Load(int, __m256* w) const {
    __m256 f[4];
    Nibbles(f);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_add_ps(_mm256_mul_ps(f[g], d), m);
  }
  static constexpr bool kHasOffset = true;
  static constexpr bool kPermuted = true;
  static int Element(int g, int lane) { return Nibbles16Element(g, lane); }
  void LoadFactored(int, __m256* f, __m256* scale, float* offset) const {
    Nibbles16Permuted(p, f);
    scale[0] = scale[1] = d;
    *offset = _mm256_cvtss_f32(m);
  }
  void Nibbles(__m256* f) const {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0f);
    U8x16ToF32(_mm_and_si128(qs, mask), f);
    U8x16ToF32(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), f + 2);
  }
};

// Q4_K: 8 sub-blocks of 32; sub-block 2g holds the low nibbles of q[32g ..
// 32g+31], sub-block 2g+1 their high nibbles. x = (d * sc) * nib - dmin * mn.
struct LoaderQ4_K {
  static constexpr int kBlockElems = 256, kBlockBytes = 144;
  const uint8_t* q;
  float scale[8], min[8];
  void Begin(const uint8_t* b) {
    const float d = LoadHalf(b);
    const float dmin = LoadHalf(b + 2);
    const uint8_t* s = b + 4;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
      } else {
        sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
      }
      scale[j] = d * static_cast<float>(sc);
      min[j] = dmin * static_cast<float>(mn);
    }
    q = b + 16;
  }
  void Load(int c, __m256* w) const {
    __m256 f[4];
    Nibbles(c, f);
    const __m256 sc = _mm256_set1_ps(scale[c]), mn = _mm256_set1_ps(min[c]);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_sub_ps(_mm256_mul_ps(sc, f[g]), mn);
  }
  static constexpr bool kHasOffset = true;
  static constexpr bool kPermuted = true;
  // 32-bit lane i of the 32 quant bytes holds bytes 4i..4i+3: vector g takes
  // byte g of each lane, i.e. element 4 * lane + g of the chunk.
  static int Element(int g, int lane) { return 4 * lane + g; }
  void LoadFactored(int c, __m256* f, __m256* sc, float* offset) const {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * (c / 2)));
    const __m256i mask = _mm256_set1_epi32(0x0f);
    const int nibble_shift = (c & 1) ? 4 : 0;
    for (int g = 0; g < 4; ++g) {
      const __m256i nib = _mm256_and_si256(_mm256_srl_epi32(bytes, _mm_cvtsi32_si128(8 * g + nibble_shift)), mask);
      f[g] = _mm256_cvtepi32_ps(nib);
    }
    sc[0] = sc[1] = _mm256_set1_ps(scale[c]);
    *offset = -min[c];
  }
  void Nibbles(int c, __m256* f) const {
    __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * (c / 2)));
    if (c & 1) bytes = _mm256_srli_epi16(bytes, 4);
    bytes = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f));
    U8x16ToF32(_mm256_castsi256_si128(bytes), f);
    U8x16ToF32(_mm256_extracti128_si256(bytes, 1), f + 2);
  }
};

// Q6_K: two halves of 128; chunk c (0..3) of a half takes its low 4 bits from
// ql[0..31] (c = 0, 2) or ql[32..63] (c = 1, 3), low (c < 2) or high nibble,
// and 2 high bits from qh[l] bits 2c..2c+1; elements 0-15 of the chunk use
// scale sc[2c], 16-31 sc[2c+1]. x = (d * sc) * (q6 - 32).
struct LoaderQ6_K {
  static constexpr int kBlockElems = 256, kBlockBytes = 210;
  const uint8_t* b;
  float d;
  void Begin(const uint8_t* block) {
    b = block;
    d = LoadHalf(block + 208);
  }
  void Load(int chunk, __m256* w) const {
    __m256 scale[2];
    LoadFactored(chunk, w, scale, nullptr);
    w[0] = _mm256_mul_ps(scale[0], w[0]);
    w[1] = _mm256_mul_ps(scale[0], w[1]);
    w[2] = _mm256_mul_ps(scale[1], w[2]);
    w[3] = _mm256_mul_ps(scale[1], w[3]);
  }
  static constexpr bool kHasOffset = false;
  static constexpr bool kPermuted = false;
  void LoadFactored(int chunk, __m256* w, __m256* scale, float*) const {
    const int half = chunk / 4, c = chunk % 4;
    const uint8_t* ql = b + 64 * half + 32 * (c & 1);
    const uint8_t* qh = b + 128 + 32 * half;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * half);
    const __m256i mask4 = _mm256_set1_epi8(0x0f), mask2 = _mm256_set1_epi8(3);
    __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    if (c >= 2) lo = _mm256_srli_epi16(lo, 4);
    lo = _mm256_and_si256(lo, mask4);
    __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    hi = _mm256_and_si256(_mm256_srl_epi16(hi, _mm_cvtsi32_si128(2 * c)), mask2);
    hi = _mm256_slli_epi16(hi, 4);
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    scale[0] = _mm256_set1_ps(d * static_cast<float>(sc[2 * c]));
    scale[1] = _mm256_set1_ps(d * static_cast<float>(sc[2 * c + 1]));
    w[0] = I8x8ToF32(q0);
    w[1] = I8x8ToF32(_mm_srli_si128(q0, 8));
    w[2] = I8x8ToF32(q1);
    w[3] = I8x8ToF32(_mm_srli_si128(q1, 8));
  }
};

template <class L>
constexpr bool kIsPlain = std::is_same_v<L, LoaderF32> || std::is_same_v<L, LoaderF16> || std::is_same_v<L, LoaderBF16>;

// out[r] = dot(row, x + r * ldx) for r < R. The whole blocks go through the
// loader; plain types may leave a tail of k % 32 elements, done in scalar.
// R = 1 keeps 4 accumulators to hide the FMA latency, R > 1 two per x row.
template <class L, int R>
void DotRows(const uint8_t* row, int64_t k, const float* x, int64_t ldx, float* out) {
  constexpr int A = R == 1 ? 4 : 2;
  constexpr int kChunks = L::kBlockElems / 32;
  __m256 acc[R][A];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
  const int64_t n_blocks = k / L::kBlockElems;
  L loader;
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    loader.Begin(row + blk * L::kBlockBytes);
    for (int c = 0; c < kChunks; ++c) {
      __m256 w[4];
      loader.Load(c, w);
      const float* xc = x + blk * L::kBlockElems + 32 * c;
      for (int r = 0; r < R; ++r) {
        for (int g = 0; g < 4; ++g) {
          acc[r][g % A] = _mm256_fmadd_ps(w[g], _mm256_loadu_ps(xc + r * ldx + 8 * g), acc[r][g % A]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    __m256 s = acc[r][0];
    for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[r][a]);
    float total = HorizontalSum(s);
    if constexpr (kIsPlain<L>) {
      for (int64_t i = n_blocks * 32; i < k; ++i) total += L::Scalar(row, i) * x[r * ldx + i];
    }
    out[r] = total;
  }
}

// The factored form for block-quantized rows: a chunk's weights are
// scale * f + offset with f small integers (as floats), so
//   dot = sum_chunks scale * (f . x) + offset * sum(x over the chunk).
// The per-chunk sums of x (xsum, [R][k / 32]) are computed once per call and
// shared by all weight rows; the weights are never scaled element by element.
// Same values as dequantize-then-dot up to f32 rounding order.
template <class L, int R>
void DotRowsFactored(const uint8_t* row, int64_t k, const float* x, int64_t ldx, const float* xsum,
                     int64_t ld_xsum, float* out) {
  constexpr int kChunks = L::kBlockElems / 32;
  __m256 acc[R][2];
  float offset_acc[R];
  for (int r = 0; r < R; ++r) {
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    offset_acc[r] = 0.0f;
  }
  const int64_t n_blocks = k / L::kBlockElems;
  L loader;
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    loader.Begin(row + blk * L::kBlockBytes);
    for (int c = 0; c < kChunks; ++c) {
      __m256 f[4], scale[2];
      float offset = 0.0f;
      loader.LoadFactored(c, f, scale, &offset);
      const int64_t chunk = blk * kChunks + c;
      const float* xc = x + 32 * chunk;
      for (int r = 0; r < R; ++r) {
        const float* xr = xc + r * ldx;
        __m256 lo = _mm256_mul_ps(f[0], _mm256_loadu_ps(xr));
        lo = _mm256_fmadd_ps(f[1], _mm256_loadu_ps(xr + 8), lo);
        __m256 hi = _mm256_mul_ps(f[2], _mm256_loadu_ps(xr + 16));
        hi = _mm256_fmadd_ps(f[3], _mm256_loadu_ps(xr + 24), hi);
        acc[r][0] = _mm256_fmadd_ps(scale[0], lo, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(scale[1], hi, acc[r][1]);
        if constexpr (L::kHasOffset) offset_acc[r] += offset * xsum[r * ld_xsum + chunk];
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = HorizontalSum(_mm256_add_ps(acc[r][0], acc[r][1])) + offset_acc[r];
}

template <class L, int R>
void DotRowsAny(const uint8_t* row, int64_t k, const float* x, const float* xsum, int64_t ld_xsum, float* out) {
  if constexpr (kIsPlain<L>) {
    DotRows<L, R>(row, k, x, k, out);
  } else {
    DotRowsFactored<L, R>(row, k, x, k, xsum, ld_xsum, out);
  }
}

// Calls fn(i, c, chunk) for every whole 32-element chunk c of every row i of
// x ([m, k], row stride k), chunk pointing at its first element.
template <class Fn>
void ForEachChunk32(const float* x, int64_t m, int64_t k, Fn fn) {
  const int64_t chunks = k / 32;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < chunks; ++c) fn(i, c, x + i * k + 32 * c);
  }
}

template <class L>
void GemvRows(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m, int64_t j0, int64_t j1,
              float* y, int64_t ldy) {
  const int64_t chunks = k / 32;
  // x in the element order the loader's factored vectors use (once per call,
  // shared by all weight rows).
  thread_local std::vector<float> x_permuted;
  if constexpr (!kIsPlain<L>) {
    if constexpr (L::kPermuted) {
      x_permuted.resize(static_cast<size_t>(m * k));
      ForEachChunk32(x, m, k, [&](int64_t i, int64_t c, const float* src) {
        float* dst = x_permuted.data() + i * k + 32 * c;
        for (int g = 0; g < 4; ++g)
          for (int lane = 0; lane < 8; ++lane) dst[8 * g + lane] = src[L::Element(g, lane)];
      });
      x = x_permuted.data();
    }
  }
  // Per-32-element sums of every x row (only the types with an offset use them).
  thread_local std::vector<float> xsum;
  if constexpr (!kIsPlain<L>) {
    if constexpr (L::kHasOffset) {
      xsum.resize(static_cast<size_t>(m * chunks));
      ForEachChunk32(x, m, k, [&](int64_t i, int64_t c, const float* xc) {
        __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xc), _mm256_loadu_ps(xc + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(xc + 16), _mm256_loadu_ps(xc + 24)));
        xsum[i * chunks + c] = HorizontalSum(s);
      });
    }
  }
  float out[4];
  for (int64_t j = j0; j < j1; ++j) {
    const uint8_t* row = w + static_cast<size_t>(j) * row_bytes;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      DotRowsAny<L, 4>(row, k, x + i * k, xsum.data() + i * chunks, chunks, out);
      for (int r = 0; r < 4; ++r) y[(i + r) * ldy + j] = out[r];
    }
    switch (m - i) {
      case 3: DotRowsAny<L, 3>(row, k, x + i * k, xsum.data() + i * chunks, chunks, out); break;
      case 2: DotRowsAny<L, 2>(row, k, x + i * k, xsum.data() + i * chunks, chunks, out); break;
      case 1: DotRowsAny<L, 1>(row, k, x + i * k, xsum.data() + i * chunks, chunks, out); break;
      default: break;
    }
    for (int64_t r = 0; r < m - i; ++r) y[(i + r) * ldy + j] = out[r];
  }
}

template <class L>
void DequantizeRows(const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1, float* dst) {
  constexpr int kChunks = L::kBlockElems / 32;
  const int64_t n_blocks = k / L::kBlockElems;
  for (int64_t j = j0; j < j1; ++j, dst += k) {
    const uint8_t* row = w + static_cast<size_t>(j) * row_bytes;
    L loader;
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      loader.Begin(row + blk * L::kBlockBytes);
      for (int c = 0; c < kChunks; ++c) {
        __m256 v[4];
        loader.Load(c, v);
        float* out = dst + blk * L::kBlockElems + 32 * c;
        for (int g = 0; g < 4; ++g) _mm256_storeu_ps(out + 8 * g, v[g]);
      }
    }
    if constexpr (kIsPlain<L>) {
      for (int64_t i = n_blocks * 32; i < k; ++i) dst[i] = L::Scalar(row, i);
    }
  }
}

template <template <class> class Fn, typename... Args>
void DispatchLoader(DType t, Args... args) {
  switch (t) {
    case DType::kF32: Fn<LoaderF32>::Run(args...); return;
    case DType::kF16: Fn<LoaderF16>::Run(args...); return;
    case DType::kBF16: Fn<LoaderBF16>::Run(args...); return;
    case DType::kQ8_0: Fn<LoaderQ8_0>::Run(args...); return;
    case DType::kQ4_0: Fn<LoaderQ4_0>::Run(args...); return;
    case DType::kQ4_1: Fn<LoaderQ4_1>::Run(args...); return;
    case DType::kQ4_K: Fn<LoaderQ4_K>::Run(args...); return;
    case DType::kQ6_K: Fn<LoaderQ6_K>::Run(args...); return;
    default: LSERVE_CHECK(false && "linear: unsupported weight dtype");
  }
}

template <class L>
struct GemvFn {
  static void Run(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m, int64_t j0, int64_t j1,
                  float* y, int64_t ldy) {
    GemvRows<L>(w, row_bytes, k, x, m, j0, j1, y, ldy);
  }
};

template <class L>
struct DequantizeFn {
  static void Run(const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1, float* dst) {
    DequantizeRows<L>(w, row_bytes, k, j0, j1, dst);
  }
};

}  // namespace

void GemvRowsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m,
                  int64_t j0, int64_t j1, float* y, int64_t ldy) {
  DispatchLoader<GemvFn>(w_dtype, w, row_bytes, k, x, m, j0, j1, y, ldy);
}

void DequantizeRowsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1,
                        float* dst) {
  DispatchLoader<DequantizeFn>(w_dtype, w, row_bytes, k, j0, j1, dst);
}

}  // namespace lserve::cpu_detail
