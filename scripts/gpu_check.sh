#!/usr/bin/env bash
# Runs on the GPU host from the repository root, after scripts/gpu_bundle.sh made .device/:
# every bundled zoo model built as a cuda engine in each precision, run on its sample request,
# and compared with the PyTorch outputs stored beside it (models/<name>/sample_outputs).
# Usage: bash scripts/gpu_check.sh [OUT_DIR]
set -u
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export LD_LIBRARY_PATH="$HERE/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
BIN="$HERE/.device/bin/clickrt"
OUT="${1:-/tmp/clickrt_gpu_check}"
mkdir -p "$OUT"
rc=0
for m in deepfm dcnv2 wide_deep din; do
  for p in fp32 tf32 fp16 bf16; do
    eng="$OUT/$m.$p.engine"
    if ! "$BIN" build "models/$m/model.onnx" -o "$eng" --backend cuda --precision "$p" --batch 1:64:4096 -q \
        2>"$OUT/$m.$p.build.log"; then
      echo "$m $p: build failed: $(tail -1 "$OUT/$m.$p.build.log")"
      continue
    fi
    rm -rf "$OUT/$m.$p.out"
    if ! "$BIN" run --engine "$eng" --inputs "models/$m/sample_inputs" --save-outputs "$OUT/$m.$p.out" \
        >/dev/null 2>"$OUT/$m.$p.run.log"; then
      echo "$m $p: run failed: $(tail -1 "$OUT/$m.$p.run.log")"; rc=1; continue
    fi
    python3 - "$OUT/$m.$p.out/prob.pb" "models/$m/sample_outputs/prob.pb" "$m" "$p" <<'PY' || rc=1
import sys
sys.path.insert(0, "bench")
from gpu_vs_torch import read_pb_float
import numpy as np
got, want, m, p = read_pb_float(sys.argv[1]), read_pb_float(sys.argv[2]), sys.argv[3], sys.argv[4]
d = float(np.abs(got - want).max())
tol = {"fp32": 1e-5, "tf32": 2e-3, "fp16": 2e-3, "bf16": 2e-3}[p]  # issue #5's limits
print(f"{m} {p}: max abs diff {d:.3e} vs PyTorch (tolerance {tol}) {'ok' if d <= tol else 'FAIL'}")
sys.exit(0 if d <= tol else 1)
PY
  done
done
exit $rc
