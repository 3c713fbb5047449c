#!/usr/bin/env bash
# Configures and builds clickrt (Release, ccache when present) into build/.
# CUDA code is compiled whenever /usr/local/cuda/bin/nvcc exists.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
