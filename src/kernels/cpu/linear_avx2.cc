// AVX2 paths of the linear kernel: weight loaders, the streaming GEMV (few
// rows of x) and the panel GEMM (many rows), which give the same bits.
//
// The dot product. Every path computes output (i, j) = dot(x_i, w_j) of k
// elements as follows, and nothing else decides its bits:
//   acc (8 f32 lanes) = 0;
//   for e = 0, 8, 16, ... < k32 (k32 = k rounded down to a multiple of 32):
//     acc = fma(w_j[e .. e+7], x_i[e .. e+7], acc)     (in lane order, below);
//   total = HorizontalSum(acc)            (one fixed reduction tree);
//   for e = k32 .. k-1 (plain types only): total = fma(w_j[e], x_i[e], total).
// Lane order: the 4-bit and 6-bit types unpack a 32-element chunk fastest as
// vector g = elements g, 4 + g, ..., 28 + g (byte g of every 32-bit lane), so
// for them both w and x take that order within each chunk (LaneOrderAvx2
// permutes x once per call); the other types keep the stored order.
// The weights are the exact dequantized values (the loaders below repeat the
// float operations of DequantizeRow, formats/gguf_quant.cc, or ones with the
// same result). One accumulator per output element, walked in k order, so
// neither the number of rows or columns handled together, nor the thread
// that handles them, nor the choice between the paths changes a bit: the
// GEMV converts the weights in registers for each group of <= 4 rows of x,
// the GEMM converts a panel of weight rows to f32 once and reuses it for all
// rows. The register tiles (rows x columns of independent accumulators) hide
// the FMA latency that a single accumulator per element would expose.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "core/check.h"
#include "kernels/cpu/linear_avx2.h"
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

// A growable scratch buffer of f32 aligned to a cache line: rows of k f32, k
// a multiple of 8, then start on 32-byte boundaries and no 256-bit load of
// the GEMM splits a cache line (malloc's 16-byte alignment made half of them
// split). Contents are not kept across Get calls that grow it.
class AlignedFloats {
 public:
  float* Get(size_t n) {
    if (n > capacity_) {
      data_.reset(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{kAlign})));
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  static constexpr size_t kAlign = 64;
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{kAlign}); }
  };
  std::unique_ptr<float, Free> data_;
  size_t capacity_ = 0;
};

// c + a * b rounded once (the tail of the dot product).
inline float FusedMulAdd(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

// Lane order of 16 bytes of Q4_0 / Q4_1 nibbles (element j < 16 = low
// nibble of byte j, 16 + j = its high nibble): the bytes go to both 128-bit
// halves, so 32-bit lane l holds bytes 4(l%4) .. 4(l%4)+3; vector g shifts
// lanes 0-3 by 8g (low nibble of byte 4l + g, element 4l + g) and lanes 4-7
// by 8g + 4 (high nibble of byte 4(l-4) + g, element 16 + 4(l-4) + g = 4l + g).
inline void Nibbles16Lanes(const uint8_t* qs, __m256i* nib) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i mask = _mm256_set1_epi32(0x0f);
  const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
  for (int g = 0; g < 4; ++g) {
    nib[g] = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_add_epi32(shift, _mm256_set1_epi32(8 * g))), mask);
  }
}

// Loaders: kBlockElems elements in kBlockBytes bytes, kBlockElems / 32 chunks.
// Begin(block) reads the block header; Load(c, w) fills w[0..3] with
// elements 32c .. 32c+31 of the block in stored order (DequantizeRowsAvx2),
// LoadLanes(c, w) in the order of the dot product: lane order where
// kLaneOrder, else the same as Load. Where a loader uses an FMA
// for scale * q + offset, the product is exact in f32 (a 4- or 8-bit integer
// times an f16 scale, or times d * sc with at most 17 significant bits), so
// the result equals DequantizeRow's separately rounded multiply and add.

struct LoaderF32 {
  static constexpr int kBlockElems = 32, kBlockBytes = 128;
  const float* p;
  void Begin(const uint8_t* b) { p = reinterpret_cast<const float*>(b); }
  static constexpr bool kLaneOrder = false;
  void LoadLanes(int c, __m256* w) const { Load(c, w); }
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
  static constexpr bool kLaneOrder = false;
  void LoadLanes(int c, __m256* w) const { Load(c, w); }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) w[g] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * g)));
  }
  static float Scalar(const uint8_t* row, int64_t i) { return LoadHalf(row + 2 * i); }
};

struct LoaderBF16 {
  static constexpr int kBlockElems = 32, kBlockBytes = 64;
  const uint8_t* p;
  void Begin(const uint8_t* b) { p = b; }
  static constexpr bool kLaneOrder = false;
  void LoadLanes(int c, __m256* w) const { Load(c, w); }
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
  static constexpr bool kLaneOrder = false;
  void LoadLanes(int c, __m256* w) const { Load(c, w); }
  void Load(int, __m256* w) const {
    for (int g = 0; g < 4; ++g) {
      w[g] = _mm256_mul_ps(I8x8ToF32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * g))), d);
    }
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
  static constexpr bool kLaneOrder = true;
  void LoadLanes(int, __m256* w) const {
    __m256i nib[4];
    Nibbles16Lanes(p, nib);
    const __m256i eight = _mm256_set1_epi32(8);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(nib[g], eight)), d);
  }
  void Load(int, __m256* w) const {
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
    // d and m converted together: [d, m, 0, 0].
    int32_t dm;
    std::memcpy(&dm, b, 4);
    const __m256 both = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128(dm)));
    d = _mm256_broadcastss_ps(_mm256_castps256_ps128(both));
    m = _mm256_permutevar8x32_ps(both, _mm256_set1_epi32(1));
  }
  static constexpr bool kLaneOrder = true;
  void LoadLanes(int, __m256* w) const {
    __m256i nib[4];
    Nibbles16Lanes(p, nib);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(nib[g]), d, m);
  }
  void Load(int, __m256* w) const {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0f);
    __m256 f[4];
    U8x16ToF32(_mm_and_si128(qs, mask), f);
    U8x16ToF32(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), f + 2);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_fmadd_ps(f[g], d, m);
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
  static constexpr bool kLaneOrder = true;
  // 32-bit lane l of the chunk's 32 quant bytes holds bytes 4l .. 4l+3:
  // vector g takes (a nibble of) byte g of each lane, element 4l + g.
  void LoadLanes(int c, __m256* w) const {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * (c / 2)));
    const __m256i mask = _mm256_set1_epi32(0x0f);
    const __m256 sc = _mm256_set1_ps(scale[c]), mn = _mm256_set1_ps(min[c]);
    const int nibble_shift = (c & 1) ? 4 : 0;
    for (int g = 0; g < 4; ++g) {
      const __m256i nib = _mm256_and_si256(_mm256_srli_epi32(bytes, 8 * g + nibble_shift), mask);
      w[g] = _mm256_fmsub_ps(sc, _mm256_cvtepi32_ps(nib), mn);
    }
  }
  void Load(int c, __m256* w) const {
    __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * (c / 2)));
    if (c & 1) bytes = _mm256_srli_epi16(bytes, 4);
    bytes = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f));
    __m256 f[4];
    U8x16ToF32(_mm256_castsi256_si128(bytes), f);
    U8x16ToF32(_mm256_extracti128_si256(bytes, 1), f + 2);
    const __m256 sc = _mm256_set1_ps(scale[c]), mn = _mm256_set1_ps(min[c]);
    for (int g = 0; g < 4; ++g) w[g] = _mm256_fmsub_ps(sc, f[g], mn);
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
  // The chunk's 32 quants (q6 - 32, one signed byte per element, in order)
  // and its two scales (elements 0-15, 16-31).
  __m256i Quants(int chunk, __m256* scale) const {
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
    scale[0] = _mm256_set1_ps(d * static_cast<float>(sc[2 * c]));
    scale[1] = _mm256_set1_ps(d * static_cast<float>(sc[2 * c + 1]));
    return _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
  }
  static constexpr bool kLaneOrder = true;
  // Vector g = signed byte g of each 32-bit lane l (element 4l + g): lanes
  // 0-3 are elements 0-15, lanes 4-7 elements 16-31.
  void LoadLanes(int chunk, __m256* w) const {
    __m256 scale[2];
    const __m256i q = Quants(chunk, scale);
    const __m256 s = _mm256_permute2f128_ps(scale[0], scale[1], 0x20);
    for (int g = 0; g < 4; ++g) {
      const __m256i v = g == 3 ? q : _mm256_slli_epi32(q, 24 - 8 * g);
      w[g] = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_srai_epi32(v, 24)));
    }
  }
  void Load(int chunk, __m256* w) const {
    __m256 scale[2];
    const __m256i q = Quants(chunk, scale);
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    w[0] = _mm256_mul_ps(scale[0], I8x8ToF32(q0));
    w[1] = _mm256_mul_ps(scale[0], I8x8ToF32(_mm_srli_si128(q0, 8)));
    w[2] = _mm256_mul_ps(scale[1], I8x8ToF32(q1));
    w[3] = _mm256_mul_ps(scale[1], I8x8ToF32(_mm_srli_si128(q1, 8)));
  }
};

template <class L>
constexpr bool kIsPlain = std::is_same_v<L, LoaderF32> || std::is_same_v<L, LoaderF16> || std::is_same_v<L, LoaderBF16>;

// ---------------------------------------------------------------------------
// GEMV: weights converted in registers.

constexpr int64_t kStreamPrefetchTiles = 1;

// y[r * ldy + c] = dot(x_r, w_c) for r < R, c < C: x rows k apart, weight
// rows row_bytes apart, each loaded and converted once per call.
template <class L, int R, int C>
void StreamTile(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, float* y, int64_t ldy) {
  constexpr int kChunks = L::kBlockElems / 32;
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t n_blocks = k / L::kBlockElems;
  L loader[C];
  // The C rows are read side by side, short streams (a few hundred bytes
  // for 4-bit rows) that the hardware prefetcher does not follow when the
  // weights come from DRAM (the Q8_0 output layer ran 2x slower). The tiles
  // of a call are consecutive rows, so a cursor running through the next
  // tile's bytes at the pace of this one fetches each line in time.
  const uint8_t* prefetch = w + kStreamPrefetchTiles * C * row_bytes;
  for (int64_t blk = 0; blk < n_blocks; ++blk, prefetch += C * L::kBlockBytes) {
    for (int64_t off = 0; off < C * L::kBlockBytes; off += 64) _mm_prefetch(prefetch + off, _MM_HINT_T0);
    for (int c = 0; c < C; ++c) loader[c].Begin(w + c * row_bytes + blk * L::kBlockBytes);
    for (int ch = 0; ch < kChunks; ++ch) {
      const float* xc = x + blk * L::kBlockElems + 32 * ch;
      for (int c = 0; c < C; ++c) {
        __m256 wv[4];
        loader[c].LoadLanes(ch, wv);
        for (int g = 0; g < 4; ++g)
          for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv[g], _mm256_loadu_ps(xc + r * k + 8 * g), acc[r][c]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float total = HorizontalSum(acc[r][c]);
      if constexpr (kIsPlain<L>) {
        for (int64_t e = n_blocks * 32; e < k; ++e) total = FusedMulAdd(L::Scalar(w + c * row_bytes, e), x[r * k + e], total);
      }
      y[r * ldy + c] = total;
    }
  }
}

// Columns per GEMV tile for R rows of x (R x C accumulators in registers).
constexpr int StreamColumns(int r) { return r <= 2 ? 4 : 2; }

// Weight rows [0, n) against x rows [0, R).
template <class L, int R>
void StreamRows(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t n, float* y, int64_t ldy) {
  constexpr int C = StreamColumns(R);
  int64_t j = 0;
  for (; j + C <= n; j += C) StreamTile<L, R, C>(w + j * row_bytes, row_bytes, k, x, y + j, ldy);
  for (; j < n; ++j) StreamTile<L, R, 1>(w + j * row_bytes, row_bytes, k, x, y + j, ldy);
}

template <class L>
void GemvRows(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m, int64_t j0, int64_t j1,
              float* y, int64_t ldy) {
  // Weight rows in groups of 16 (outer) so that a group stays in L1 while
  // every 4-row group of x passes over it.
  constexpr int64_t kGroup = 16;
  for (int64_t jg = j0; jg < j1; jg += kGroup) {
    const int64_t n = std::min(kGroup, j1 - jg);
    const uint8_t* wg = w + static_cast<size_t>(jg) * row_bytes;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) StreamRows<L, 4>(wg, row_bytes, k, x + i * k, n, y + i * ldy + jg, ldy);
    switch (m - i) {
      case 3: StreamRows<L, 3>(wg, row_bytes, k, x + i * k, n, y + i * ldy + jg, ldy); break;
      case 2: StreamRows<L, 2>(wg, row_bytes, k, x + i * k, n, y + i * ldy + jg, ldy); break;
      case 1: StreamRows<L, 1>(wg, row_bytes, k, x + i * k, n, y + i * ldy + jg, ldy); break;
      default: break;
    }
  }
}

// ---------------------------------------------------------------------------
// GEMM: weights converted once per panel.

// Weight rows [j0, j1) as f32 into dst [(j1 - j0), k]: in stored order, or
// each chunk in the dot product's order (kLanes, the GEMM's panels).
template <class L, bool kLanes>
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
        if constexpr (kLanes) {
          loader.LoadLanes(c, v);
        } else {
          loader.Load(c, v);
        }
        float* out = dst + blk * L::kBlockElems + 32 * c;
        for (int g = 0; g < 4; ++g) _mm256_storeu_ps(out + 8 * g, v[g]);
      }
    }
    if constexpr (kIsPlain<L>) {
      for (int64_t i = n_blocks * 32; i < k; ++i) dst[i] = L::Scalar(row, i);
    }
  }
}

constexpr int kPanelTileRows = 4, kPanelTileCols = 3;
constexpr int64_t kMaxPanelColumns = 96;

// y[r * ldy + c] = dot(x_r, panel_c) for r < R, c < C: panel rows of k f32
// (ldp apart), x rows k apart. 4 x 3 fills 12 of the 16 vector registers
// with accumulators, 3 with weights and 1 with x: 7 loads per 12 FMAs, from
// L1 (4 rows of x) and L2 (the panel). (Slicing k so that a tile's panel
// rows stay in L1 too, the accumulators kept in memory between slices,
// measured 7% faster at k = 1536 but 5% slower at k = 576.)
template <int R, int C>
void PanelTile(const float* panel, int64_t ldp, int64_t k, const float* x, float* y, int64_t ldy) {
  const int64_t k32 = k / 32 * 32;
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t e = 0; e < k32; e += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_ps(panel + c * ldp + e);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * k + e);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(wv[c], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float total = HorizontalSum(acc[r][c]);
      for (int64_t e = k32; e < k; ++e) total = FusedMulAdd(panel[c * ldp + e], x[r * k + e], total);
      y[r * ldy + c] = total;
    }
  }
}

template <int R>
void PanelRows(const float* panel, int64_t ldp, int64_t n, int64_t k, const float* x, float* y, int64_t ldy) {
  int64_t c = 0;
  for (; c + kPanelTileCols <= n; c += kPanelTileCols) {
    PanelTile<R, kPanelTileCols>(panel + c * ldp, ldp, k, x, y + c, ldy);
  }
  switch (n - c) {
    case 2: PanelTile<R, 2>(panel + c * ldp, ldp, k, x, y + c, ldy); break;
    case 1: PanelTile<R, 1>(panel + c * ldp, ldp, k, x, y + c, ldy); break;
    default: break;
  }
}

// y[:, 0:n) = x panel^T for all m rows of x.
void ApplyPanel(const float* panel, int64_t ldp, int64_t n, int64_t k, const float* x, int64_t m, float* y,
                int64_t ldy) {
  int64_t i = 0;
  for (; i + kPanelTileRows <= m; i += kPanelTileRows) PanelRows<4>(panel, ldp, n, k, x + i * k, y + i * ldy, ldy);
  switch (m - i) {
    case 3: PanelRows<3>(panel, ldp, n, k, x + i * k, y + i * ldy, ldy); break;
    case 2: PanelRows<2>(panel, ldp, n, k, x + i * k, y + i * ldy, ldy); break;
    case 1: PanelRows<1>(panel, ldp, n, k, x + i * k, y + i * ldy, ldy); break;
    default: break;
  }
}

template <class L>
void GemmColumns(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m, int64_t j0, int64_t j1,
                 float* y, int64_t ldy) {
  const int64_t cols = LinearPanelColumns(k);
  thread_local AlignedFloats panel;
  for (int64_t jb = j0; jb < j1; jb += cols) {
    const int64_t n = std::min(cols, j1 - jb);
    if constexpr (std::is_same_v<L, LoaderF32>) {
      // f32 rows are their own panel.
      ApplyPanel(reinterpret_cast<const float*>(w + static_cast<size_t>(jb) * row_bytes), k, n, k, x, m, y + jb, ldy);
    } else {
      float* f32 = panel.Get(static_cast<size_t>(n * k));
      DequantizeRows<L, true>(w, row_bytes, k, jb, jb + n, f32);
      ApplyPanel(f32, k, n, k, x, m, y + jb, ldy);
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
struct LaneOrderFn {
  static void Run(bool* lanes) { *lanes = L::kLaneOrder; }
};

template <class L>
struct GemmFn {
  static void Run(const uint8_t* w, size_t row_bytes, int64_t k, const float* x, int64_t m, int64_t j0, int64_t j1,
                  float* y, int64_t ldy) {
    GemmColumns<L>(w, row_bytes, k, x, m, j0, j1, y, ldy);
  }
};

template <class L>
struct DequantizeFn {
  static void Run(const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1, float* dst) {
    DequantizeRows<L, false>(w, row_bytes, k, j0, j1, dst);
  }
};

}  // namespace

int64_t LinearPanelColumns(int64_t k) {
  // ~96 KiB of f32 weights: with the 4 rows of x in flight the working set
  // stays well inside a 512 KiB L2.
  constexpr int64_t kPanelBytes = 96 * 1024;
  const int64_t cols = std::min(kMaxPanelColumns, kPanelBytes / (4 * std::max<int64_t>(k, 1)));
  return std::max<int64_t>(kPanelTileCols, cols / kPanelTileCols * kPanelTileCols);
}

bool LinearLaneOrder(DType w_dtype) {
  bool lanes = false;
  DispatchLoader<LaneOrderFn>(w_dtype, &lanes);
  return lanes;
}

float* LinearScratchX(int64_t n) {
  thread_local AlignedFloats scratch;
  return scratch.Get(static_cast<size_t>(n));
}

void LaneOrderAvx2(const float* x, int64_t m, int64_t k, float* out) {
  LSERVE_CHECK(k % 32 == 0);
  // Per 16 elements, a 4 x 4 transpose: rows r = elements 4r .. 4r+3 of each
  // half-chunk (low 128 bits: elements 0-15, high: 16-31) become vectors
  // g = elements g, 4 + g, 8 + g, 12 + g.
  for (int64_t c = 0; c < m * k; c += 32) {
    const float* src = x + c;
    __m256 r[4];
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + 4 * i)), _mm_loadu_ps(src + 16 + 4 * i), 1);
    }
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    _mm256_storeu_ps(out + c, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(out + c + 8, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm256_storeu_ps(out + c + 16, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
    _mm256_storeu_ps(out + c + 24, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
  }
}

void GemvColumnsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x_lanes, int64_t m,
                     int64_t j0, int64_t j1, float* y, int64_t ldy) {
  DispatchLoader<GemvFn>(w_dtype, w, row_bytes, k, x_lanes, m, j0, j1, y, ldy);
}

void GemmColumnsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, const float* x_lanes, int64_t m,
                     int64_t j0, int64_t j1, float* y, int64_t ldy) {
  DispatchLoader<GemmFn>(w_dtype, w, row_bytes, k, x_lanes, m, j0, j1, y, ldy);
}

void DequantizeRowsAvx2(DType w_dtype, const uint8_t* w, size_t row_bytes, int64_t k, int64_t j0, int64_t j1,
                        float* dst) {
  DispatchLoader<DequantizeFn>(w_dtype, w, row_bytes, k, j0, j1, dst);
}

}  // namespace lserve::cpu_detail
