#!/usr/bin/env bash
# Set-up (if needed), build, and run every test. This is the README's test
# command and what CI runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LSERVE_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/tools/setup.sh"
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" --timeout 900
