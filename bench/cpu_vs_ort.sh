#!/usr/bin/env bash
# clickrt's CPU engine vs ONNX Runtime (CPU, npm's onnxruntime-node) on the benchmark-shape DeepFM
# and DCN-v2: same ONNX file, same inputs, same thread count, one run; outputs must agree.
#
# usage: bash bench/cpu_vs_ort.sh [THREADS] [BATCHES] [SECONDS]   (defaults: 2, 1,8,64,512,4096, 3)
# Models and engines are cached in build/bench/. With INT8=1 it also runs the INT8 engines
# (calibrated, percentile, on 2048 synthetic rows drawn like the benchmark's inputs; int8 layers,
# and int8 layers + int8 row-wise embeddings) against the same ONNX Runtime FP32 run; their
# outputs must agree with ORT's within 0.05 (click probabilities; the models have random weights).
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
  if [[ "${INT8:-0}" == 1 ]]; then
    calib="$OUT/${m}_calib"
    if [[ ! -d "$calib" ]]; then
      build/bin/clickrt bench "$OUT/$m.engine" --batch 2048 --iterations 1 --warmup 0 \
        --save-inputs "$OUT/${m}_calib.json" >/dev/null
      /usr/bin/python3 - "$OUT/${m}_calib.json" "$calib" <<'PY'
import json, sys
import numpy as np
sys.path.insert(0, "python")
from clickrt_zoo.tensor_io import write_tensor_dir
doc = json.load(open(sys.argv[1]))
write_tensor_dir(sys.argv[2], {k: np.array(v["data"]).reshape(v["shape"]).astype(
    np.int64 if v["dtype"] == "int64" else np.float32) for k, v in doc.items()})
PY
    fi
    for variant in int8 int8emb; do
      extra=()
      [[ "$variant" == int8emb ]] && extra=(--embeddings int8)
      build/bin/clickrt build "$OUT/$m.onnx" -o "$OUT/$m.$variant.engine" --batch 1:512:4096 -q \
        --precision int8 --calib "$calib" --calibrator percentile "${extra[@]}" 2>/dev/null
      node bench/cpu_vs_ort.js --clickrt build/bin/clickrt --model "$OUT/$m.onnx" \
        --engine "$OUT/$m.$variant.engine" --batches "$BATCHES" --threads "$THREADS" \
        --seconds "$SECONDS_PER" --name "$m $variant" --tolerance 0.05 | grep -v '^json:'
    done
  fi
done
