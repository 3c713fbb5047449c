#!/usr/bin/env bash
# Installs the Debian 12 packages clickrt builds, tests and runs with. Idempotent: does nothing
# when every package is already installed. Needs root (or sudo) on a fresh machine.
set -euo pipefail

PACKAGES=(
  # toolchain
  cmake ninja-build g++ make ccache git pkg-config
  # ONNX import
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  # CLI, JSON
  libcli11-dev nlohmann-json3-dev
  # tests
  libgtest-dev libgmock-dev libbenchmark-dev
  # fast CPU kernels
  libdnnl-dev
  # model zoo, training and export (python/)
  python3 python3-torch python3-onnx python3-sklearn python3-numpy python3-pytest
  # feature store (Redis client and server)
  libhiredis-dev redis-server
  # server front ends (gRPC, HTTP) and the libFuzzer build of the request decoders
  libgrpc++-dev protobuf-compiler-grpc libcpp-httplib-dev clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[[ "$(id -u)" != 0 ]] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
