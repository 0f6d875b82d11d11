#!/usr/bin/env bash
# Long-context CPU benchmark of the demo model (issue: LServe on the CPU):
# for each prompt length, lserve with dense attention, lserve with LServe
# attention (streaming heads calibrated at ratio 0.5, DESIGN.md §4 defaults
# otherwise), and llama.cpp's llama-bench at the same length: prefill time,
# decode ms/token at that depth, KV bytes, pages visited. Lengths past the
# model's trained 8192 tokens run with YaRN RoPE scaling (factor 4) in lserve;
# llama-bench measures speed only and takes no scaling flag.
#   bash bench/lserve_cpu.sh [THREADS] [LENGTHS] [DECODE_TOKENS]
#   e.g. bash bench/lserve_cpu.sh 2 "4096 8192 32768" 32
# Environment: LLAMACPP=0 skips llama.cpp; EXTRA="--prefill-local 4096" adds a
# third lserve run per length with those flags (LServe's LongBench setting).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${1:-$(nproc)}"
LENGTHS="${2:-4096 8192 32768}"
DECODE="${3:-32}"
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
LSERVE="${LSERVE_BIN:-$ROOT/build/lserve}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Head roles are calibrated once (ratio 0.5 on the synthetic passkey text) and reused.
PATTERN="$WORK/pattern.tsv"
"$LSERVE" calibrate --model "$MODEL" --threads "$THREADS" --out "$PATTERN" >/dev/null

summary() {
  python3 -c "
import json,sys
j=json.load(sys.stdin); t=j['timings']; s=j['sparsity']; kv=j['kv']
dec = t['decode_ms']/max(1,t['generated_tokens']-1)
pv = s['prefill_blocks_visited']/max(1,s['prefill_blocks_dense'])
dv = s['decode_pages_read']/max(1,s['decode_pages_dense'])
print(f\"{sys.argv[1]:>7} {sys.argv[2]:>6}  prefill {t['prefill_ms']/1000:8.2f} s ({t['prefill_tokens_per_s']:7.1f} tok/s)\"
      f\"  decode {dec:7.2f} ms/tok  kv {(kv['retrieval_bytes']+kv['streaming_bytes'])/2**20:7.1f} MiB\"
      f\"  prefill pages {pv:5.3f} of dense  decode pages {dv:5.3f} of dense\")
" "$1" "$2"
}

echo "# lserve ($LSERVE) and llama.cpp, threads=$THREADS, decode=$DECODE tokens, $(date -u +%F)"
for N in $LENGTHS; do
  python3 -c "import random; r=random.Random($N); print(','.join(str(r.randrange(100, 40000)) for _ in range($N)))" \
    > "$WORK/ids.txt"
  ROPE=()
  if [ "$N" -gt 8000 ]; then ROPE=(--rope-scaling yarn --rope-factor 4); fi
  COMMON=(generate --model "$MODEL" --ids-file "$WORK/ids.txt" --max-tokens "$DECODE" --ignore-eos --temperature 0
          --threads "$THREADS" --json "${ROPE[@]}")
  "$LSERVE" "${COMMON[@]}" --attention dense | summary "$N" dense
  "$LSERVE" "${COMMON[@]}" --attention lserve --attn-pattern "$PATTERN" | summary "$N" lserve
  if [ -n "${EXTRA:-}" ]; then
    # shellcheck disable=SC2086
    "$LSERVE" "${COMMON[@]}" --attention lserve --attn-pattern "$PATTERN" $EXTRA | summary "$N" "lserve+"
  fi
done
[ "${LLAMACPP:-1}" = 0 ] && exit 0

BENCH="$(bash "$ROOT/bench/peers/build_llamacpp.sh")"
echo "# llama.cpp ($BENCH): pp = prefill of N tokens, tg = decode at depth N"
for N in $LENGTHS; do
  "$BENCH" -m "$MODEL" -t "$THREADS" -p "$N" -n 0 -r 1 -o md 2>/dev/null | tail -n +3
  "$BENCH" -m "$MODEL" -t "$THREADS" -p 0 -n "$DECODE" -d "$N" -r 1 -o md 2>/dev/null | tail -n +3
done
