#!/usr/bin/env bash
# Installs what lserve needs on a fresh Debian 12 machine, builds it, and
# fetches the demo model once. Idempotent: a second run only rebuilds.
#   bash tools/setup.sh            # deps + demo model + build into build/
# Environment: LSERVE_BUILD_DIR (default build), LSERVE_SKIP_APT=1 to skip apt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LSERVE_BUILD_DIR:-$ROOT/build}"

APT_PACKAGES=(cmake g++ make pkg-config nlohmann-json3-dev libcli11-dev libpcre2-dev
              libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev libcpp-httplib-dev
              clang libclang-rt-14-dev)

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

[[ "${LSERVE_SKIP_APT:-0}" == 1 ]] || install_packages
bash "$ROOT/tools/fetch_demo_model.sh"
# The official OpenAI Python client, for the server's client test (pinned).
if ! python3 -c "import openai" >/dev/null 2>&1; then
  python3 -m pip install --quiet "openai==3.57.0" ||
    python3 -m pip install --quiet --break-system-packages "openai==3.57.0" ||
    echo "setup: could not install the openai Python package; its test will be skipped"
fi

cmake_args=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release)
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  cmake_args+=(-DLSERVE_CUDA=ON)
fi
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
echo "setup: built $BUILD/lserve"
