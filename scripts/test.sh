#!/usr/bin/env bash
# Every test: install, build, then ctest (unit, ONNX conformance, CLI, python, and GPU tests,
# which report "skipped" where no GPU exists).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
