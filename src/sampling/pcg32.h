// Pcg32: the PCG-XSH-RR generator (64-bit state, 32-bit output; O'Neill,
// "PCG: A Family of Simple Fast Space-Efficient Statistically Good
// Algorithms for Random Number Generation", 2014), written out here so that a
// seed gives the same numbers on every platform, compiler and standard
// library (std::uniform_real_distribution does not promise that).
// Matches the reference pcg32_srandom_r / pcg32_random_r bit for bit.
#pragma once

#include <cstdint>

namespace lserve {

class Pcg32 {
 public:
  // `stream` selects one of 2^63 independent sequences for the same seed.
  Pcg32(uint64_t seed, uint64_t stream) : state_(0), increment_((stream << 1) | 1u) {
    Next();
    state_ += seed;
    Next();
  }

  uint32_t Next() {
    const uint64_t old = state_;
    state_ = old * kMultiplier + increment_;
    const uint32_t xorshifted = static_cast<uint32_t>(((old >> 18) ^ old) >> 27);
    const uint32_t rot = static_cast<uint32_t>(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
  }

  // Uniform in [0, 1) with 53 random bits (two outputs, high word first).
  double NextDouble() {
    const uint64_t hi = Next();
    const uint64_t lo = Next();
    const uint64_t bits = ((hi << 32) | lo) >> 11;
    return static_cast<double>(bits) * 0x1.0p-53;
  }

 private:
  static constexpr uint64_t kMultiplier = 6364136223846793005ULL;
  uint64_t state_;
  uint64_t increment_;
};

// 64 bits from the operating system's entropy source (std::random_device),
// mixed with the clock and an address when that source is unavailable.
// Never throws.
uint64_t RandomSeed();

}  // namespace lserve
