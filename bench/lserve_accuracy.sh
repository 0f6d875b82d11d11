#!/usr/bin/env bash
# Long-context accuracy of the demo model, LServe vs dense (`lserve eval`):
# passkey retrieval and a needle in the Paul Graham essays (../shared/data/haystack)
# at each length x 5 depths, and the perplexity of the essays with the last
# DECODE tokens fed as decode steps. Prints one summary line per task and run;
# the full JSON of each task lands in OUT_DIR.
#   bash bench/lserve_accuracy.sh [THREADS] [LENGTHS] [DECODE] [OUT_DIR]
#   e.g. bash bench/lserve_accuracy.sh 2 "4096,8192" 512 /tmp/acc
# Environment: EXTRA="--token-budget 2048" adds flags to the LServe run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${1:-$(nproc)}"
LENGTHS="${2:-4096,8192}"
DECODE="${3:-512}"
OUT="${4:-$(mktemp -d)}"
LSERVE="${LSERVE_BIN:-$ROOT/build/lserve}"
HAYSTACK="$ROOT/../shared/data/haystack"
mkdir -p "$OUT"
MAXLEN="${LENGTHS##*,}"

summary() {
  python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
for r in j['runs']:
    s=r['sparsity']; dv=s['decode_pages_read']/max(1,s['decode_pages_dense'])
    if j['task']=='perplexity':
        extra=f\"ppl all {r['all']['perplexity']:.3f}  prefill {r['prefill']['perplexity']:.3f}  decode {r['decode']['perplexity']:.3f}\"
        if 'decode_argmax_agreement_with_first' in r: extra+=f\"  decode argmax agreement {r['decode_argmax_agreement_with_first']:.3f}\"
    else:
        by=' '.join(f'{k}:{v:.2f}' for k,v in r['accuracy_by_length'].items())
        extra=f\"accuracy {r['accuracy']:.2f} ({by})\"
        if 'same_output_as_first' in r: extra+=f\"  same answer as LServe {r['same_output_as_first']:.2f}\"
    print(f\"{j['task']:>10} {r['attention']:>6}  {extra}  decode pages {dv:.3f} of dense\")
" "$1"
}

# shellcheck disable=SC2086
"$LSERVE" eval --task passkey --lengths "$LENGTHS" --threads "$THREADS" --quiet ${EXTRA:-} > "$OUT/passkey.json"
summary "$OUT/passkey.json"
# shellcheck disable=SC2086
"$LSERVE" eval --task needle --haystack "$HAYSTACK" --lengths "$LENGTHS" --threads "$THREADS" --quiet ${EXTRA:-} \
  > "$OUT/needle.json"
summary "$OUT/needle.json"
# shellcheck disable=SC2086
"$LSERVE" eval --task perplexity --text "$HAYSTACK" --max-length "$MAXLEN" --decode-tokens "$DECODE" \
  --threads "$THREADS" --quiet ${EXTRA:-} > "$OUT/perplexity.json"
summary "$OUT/perplexity.json"
