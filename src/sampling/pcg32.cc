#include "sampling/pcg32.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <random>

namespace lserve {
namespace {

// SplitMix64's finalizer: spreads a weak input over all 64 bits.
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t RandomSeed() {
  // A process-wide counter keeps two fallback seeds taken in the same clock
  // tick apart.
  static std::atomic<uint64_t> counter{0};
  uint64_t fallback = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  fallback ^= Mix64(reinterpret_cast<uintptr_t>(&counter) + counter.fetch_add(1, std::memory_order_relaxed));
  try {
    std::random_device device;
    const uint64_t hi = device();
    const uint64_t lo = device();
    return Mix64((hi << 32) ^ lo ^ fallback);
  } catch (const std::exception&) {
    return Mix64(fallback);
  }
}

}  // namespace lserve
