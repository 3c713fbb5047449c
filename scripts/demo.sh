#!/usr/bin/env bash
# The main job on the embedded default: install, build, compile the bundled DeepFM and score the
# sample request with it, printing the click probabilities.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
MODEL="${MODEL:-models/deepfm}"
echo
echo "== clickrt info $MODEL/model.onnx"
build/bin/clickrt info "$MODEL/model.onnx"
echo
echo "== clickrt run: scoring the sample request ($MODEL/sample_inputs)"
build/bin/clickrt run --model "$MODEL/model.onnx" --inputs "$MODEL/sample_inputs"
