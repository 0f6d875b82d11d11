#!/usr/bin/env bash
# Demo-model CPU benchmark: lserve's prefill (512-token prompt) and decode
# speed beside llama.cpp's llama-bench on the same GGUF, same threads, same
# machine, in the same run. llama.cpp is a measurement peer only
# (bench/peers/build_llamacpp.sh builds it into build-peers/, ignored).
#   bash bench/cpu_demo.sh [THREADS] [REPEATS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${1:-$(nproc)}"
REPEATS="${2:-3}"
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
LSERVE="${LSERVE_BIN:-$ROOT/build/lserve}"
PROMPT_TOKENS=512
GEN_TOKENS=128

# A 512-token prompt of ordinary text ids (no specials), the same every run.
IDS=$(python3 -c "import random; r=random.Random(0); print(','.join(str(r.randrange(100, 40000)) for _ in range($PROMPT_TOKENS)))")

echo "# lserve ($LSERVE), threads=$THREADS, prompt=$PROMPT_TOKENS, generated=$GEN_TOKENS"
for i in $(seq "$REPEATS"); do
  "$LSERVE" generate --model "$MODEL" --ids "$IDS" --max-tokens "$GEN_TOKENS" --ignore-eos --temperature 0 \
    --threads "$THREADS" --json | python3 -c "
import json,sys; t=json.load(sys.stdin)['timings']
print(f\"lserve prefill {t['prefill_tokens_per_s']:.1f} tok/s  decode {t['decode_tokens_per_s']:.1f} tok/s\")"
done

BENCH="$(bash "$ROOT/bench/peers/build_llamacpp.sh")"
echo "# llama.cpp ($BENCH)"
"$BENCH" -m "$MODEL" -t "$THREADS" -p "$PROMPT_TOKENS" -n "$GEN_TOKENS" -r "$REPEATS" -o md 2>/dev/null
