#!/usr/bin/env bash
# Builds the request-decoder fuzz target with clang-14 + libFuzzer (ASan + UBSan) in its own
# build folder and runs it for SECONDS (default 30) from the seed corpus. Exit 0 = no finding.
#   fuzz/run_fuzz.sh [SECONDS]        FUZZ_BUILD_DIR overrides the build folder (build-fuzz)
set -euo pipefail
seconds="${1:-30}"
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$src/build-fuzz}"
for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || { echo "run_fuzz: $tool missing (scripts/setup.sh installs it)"; exit 1; }
done
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link -g"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
  -DCLICKRT_BUILD_FUZZ=ON -DCLICKRT_BUILD_TESTS=OFF -DCLICKRT_WITH_CUDA=OFF >/dev/null
ninja -C "$build" request_decoders_fuzz
# The corpus grows in a scratch copy: the seeds in the repository stay as they are.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src/fuzz/corpus/"* "$work/"
"$build/bin/request_decoders_fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" "$work"
