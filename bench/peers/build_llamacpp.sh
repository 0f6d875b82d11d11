#!/usr/bin/env bash
# Builds llama.cpp (a measurement peer only, never part of lserve) from the
# source distribution that the PyPI package llama-cpp-python carries, into
# build-peers/llama.cpp (ignored by git). Prints the path of llama-bench.
#   bash bench/peers/build_llamacpp.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/build-peers"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
BENCH="$OUT/llama.cpp-build/bin/llama-bench"
if [[ -x "$BENCH" ]]; then echo "$BENCH"; exit 0; fi
mkdir -p "$OUT"
if [[ ! -d "$OUT/src" ]]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$OUT" "llama-cpp-python==$VERSION" >&2
  mkdir -p "$OUT/src"
  tar -xzf "$OUT"/llama_cpp_python-"$VERSION".tar.gz -C "$OUT/src" --strip-components=1
fi
cmake -S "$OUT/src/vendor/llama.cpp" -B "$OUT/llama.cpp-build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$OUT/llama.cpp-build" -j"$(nproc)" --target llama-bench >&2
echo "$BENCH"
