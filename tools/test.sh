#!/usr/bin/env bash
# Set-up (if needed), build, and run every test. This is the README's test
# command and what CI runs. Under CI (or LSERVE_SANITIZE_TESTS=1) the unit
# tests of everything that parses untrusted input or keeps page bookkeeping
# also run once under AddressSanitizer + UndefinedBehaviorSanitizer, and every
# libFuzzer target runs for LSERVE_FUZZ_SECONDS (default 30) from its seeds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LSERVE_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/tools/setup.sh"

if [[ "${CI:-}" == "true" || "${LSERVE_SANITIZE_TESTS:-0}" == 1 ]]; then
  ASAN_BUILD="$BUILD-asan"
  cmake -S "$ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSERVE_SANITIZE=ON >/dev/null
  cmake --build "$ASAN_BUILD" -j"$(nproc)" --target test_unit_core test_unit_formats test_unit_tokenizer \
    test_unit_kvcache test_unit_sampling test_unit_scheduler test_unit_server
  (cd "$ASAN_BUILD" &&
   ASAN_OPTIONS=max_allocation_size_mb=1024:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$(nproc)" --timeout 900 -E "_NOT_BUILT$")
  bash "$ROOT/tools/fuzz.sh" "${LSERVE_FUZZ_SECONDS:-30}"
fi

cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" --timeout 900
