#!/usr/bin/env bash
# The main job on the embedded default: install, build clickrt, compile the bundled DeepFM into a
# CPU engine, score the sample request with it (and with the reference executor, to show they
# agree), then time it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
MODEL="${MODEL:-models/deepfm}"
ENGINE="build/$(basename "$MODEL").engine"
echo
echo "== clickrt info $MODEL/model.onnx"
build/bin/clickrt info "$MODEL/model.onnx"
echo
echo "== clickrt build $MODEL/model.onnx -o $ENGINE"
build/bin/clickrt build "$MODEL/model.onnx" -o "$ENGINE" --batch 1:64:1024
echo
echo "== clickrt run --engine $ENGINE: click probabilities for the sample request ($MODEL/sample_inputs)"
build/bin/clickrt run --engine "$ENGINE" --inputs "$MODEL/sample_inputs"
echo
echo "== the same request through the reference executor (the ground truth)"
build/bin/clickrt run --model "$MODEL/model.onnx" --inputs "$MODEL/sample_inputs"
echo
echo "== clickrt bench $ENGINE --batch 64"
build/bin/clickrt bench "$ENGINE" --batch 64 --duration 2
