#!/usr/bin/env bash
# Set-up (if needed), build, and run lserve. With no arguments it runs the
# main job on the demo model; any arguments are passed to `lserve`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LSERVE_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/tools/setup.sh" >&2
if (($# == 0)); then
  set -- serve
fi
exec "$BUILD/lserve" "$@"
