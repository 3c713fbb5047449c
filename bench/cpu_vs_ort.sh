#!/usr/bin/env bash
# clickrt's CPU engine vs ONNX Runtime (CPU, npm's onnxruntime-node) on the benchmark-shape DeepFM
# and DCN-v2: same ONNX file, same inputs, same thread count, one run; outputs must agree.
#
# usage: bash bench/cpu_vs_ort.sh [THREADS] [BATCHES] [SECONDS]   (defaults: 2, 1,8,64,512,4096, 3)
# Models and engines are cached in build/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-2}"
BATCHES="${2:-1,8,64,512,4096}"
SECONDS_PER="${3:-3}"
bash scripts/setup.sh >/dev/null
command -v node >/dev/null || { apt-get install -y -qq nodejs npm >/dev/null; }
bash scripts/build.sh >/dev/null
OUT=build/bench
mkdir -p "$OUT"
# The install script of onnxruntime-node downloads from a host we cannot reach; the CPU library
# is already in the package, so skip scripts.
if [[ ! -d bench/node_modules/onnxruntime-node ]]; then
  (cd bench && npm install --ignore-scripts --no-audit --no-fund >/dev/null)
fi
/usr/bin/python3 bench/make_bench_models.py "$OUT" deepfm,dcnv2
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs); threads $THREADS; $(date -u +%FT%TZ)"
echo "clickrt $(build/bin/clickrt --version); onnxruntime-node $(node -p "require('./bench/node_modules/onnxruntime-node/package.json').version")"
for m in deepfm dcnv2; do
  if [[ ! -f "$OUT/$m.engine" || "$OUT/$m.onnx" -nt "$OUT/$m.engine" || build/bin/clickrt -nt "$OUT/$m.engine" ]]; then
    build/bin/clickrt build "$OUT/$m.onnx" -o "$OUT/$m.engine" --batch 1:512:4096 -q
  fi
  node bench/cpu_vs_ort.js --clickrt build/bin/clickrt --model "$OUT/$m.onnx" --engine "$OUT/$m.engine" \
    --batches "$BATCHES" --threads "$THREADS" --seconds "$SECONDS_PER" --name "$m" | grep -v '^json:'
done
