#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) into build-fuzz
# and runs each for SECONDS (RELIABILITY.md item 8: 10 minutes per target;
# the test command runs them briefly under CI). Seeds: tests/fuzz/corpus/<target>
# (checked in: hand-written inputs and every crasher once fixed) plus inputs
# made from tests/fixtures. A crash, leak, timeout (10 s) or RSS over 2 GiB
# fails the run; the input is kept as build-fuzz/artifacts/<target>-*.
#   bash tools/fuzz.sh [SECONDS]            # default 600
# Environment: FUZZ_TARGETS="fuzz_gguf fuzz_hf_config" picks targets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${1:-600}"
BUILD="${LSERVE_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
TARGETS=(${FUZZ_TARGETS:-fuzz_request_json fuzz_chat_template fuzz_hf_config fuzz_tokenizer_json fuzz_safetensors
         fuzz_gguf})

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSERVE_FUZZ=ON \
  -DLSERVE_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ARTIFACTS="$BUILD/artifacts"
mkdir -p "$ARTIFACTS"
FIX="$ROOT/tests/fixtures"

# Inputs made from the fixtures, in the target's input format.
seed_fixtures() {
  local target="$1" dir="$2"
  case "$target" in
    fuzz_gguf) cp "$FIX"/gguf/*.gguf "$dir"/ ;;
    fuzz_safetensors)
      for m in "$FIX"/models/*/; do
        [[ -f "$m/model.safetensors" ]] && head -c 65536 "$m/model.safetensors" > "$dir/$(basename "$m")"
      done ;;
    fuzz_hf_config)
      for m in "$FIX"/models/*/; do
        { cat "$m/config.json"; printf '\0'; cat "$m/generation_config.json" 2>/dev/null || true; } \
          > "$dir/$(basename "$m")"
      done ;;
    fuzz_tokenizer_json)
      for t in "$FIX"/tokenizers/*/; do
        { cat "$t/tokenizer.json"; printf '\0'; cat "$t/tokenizer_config.json" 2>/dev/null || true; } \
          > "$dir/$(basename "$t")"
      done ;;
    fuzz_chat_template)
      python3 - "$FIX/chat" "$dir" <<'EOF'
import json, pathlib, sys
for f in pathlib.Path(sys.argv[1]).glob("*.json"):
    t = json.loads(f.read_text()).get("template")
    if isinstance(t, str):
        (pathlib.Path(sys.argv[2]) / f.stem).write_text(t)
EOF
      ;;
  esac
}

failed=0
for target in "${TARGETS[@]}"; do
  corpus="$WORK/$target"
  seeds="$WORK/$target-seeds"
  mkdir -p "$corpus" "$seeds"
  [[ -d "$ROOT/tests/fuzz/corpus/$target" ]] && cp "$ROOT/tests/fuzz/corpus/$target"/* "$seeds"/ 2>/dev/null || true
  seed_fixtures "$target" "$seeds"
  echo "fuzz: $target for ${SECONDS_EACH}s ($(ls "$seeds" | wc -l) seeds)"
  if ! ASAN_OPTIONS=max_allocation_size_mb=1024:detect_leaks=1:allocator_may_return_null=1 \
       UBSAN_OPTIONS=print_stacktrace=1 \
       "$BUILD/$target" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target-" "$corpus" "$seeds" \
       > "$WORK/$target.log" 2>&1; then
    echo "fuzz: $target FAILED"
    tail -n 60 "$WORK/$target.log"
    failed=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "$WORK/$target.log" | tr '\n' ' '
    echo
  fi
done
exit "$failed"
