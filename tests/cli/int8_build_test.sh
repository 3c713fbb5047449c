#!/usr/bin/env bash
# `clickrt build --precision int8` as a user runs it on the bundled DeepFM: calibration (and its
# cache), the accuracy gate with mixed precision, the gate catching an unrepresentative
# calibration set, row-wise quantized embeddings, and the errors of bad flags.
# Usage: int8_build_test.sh CLICKRT_BINARY SOURCE_DIR
set -u
BIN="$1"
SRC="$2"
M="$SRC/models/deepfm"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/expect.sh"
# check NAME PYTHON_EXPR: evaluates EXPR with `m` = the engine's metadata (from inspect).
check() {
  local name="$1" expr="$2" engine="$3"
  if "$BIN" inspect "$engine" --compact | /usr/bin/python3 -c \
      "import json,sys; m=json.load(sys.stdin)['meta']; sys.exit(0 if ($expr) else 1)"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: $expr"
    "$BIN" inspect "$engine" --compact | head -c 2000
  fi
}

# Representative calibration (the validation inputs, percentile): the whole model in INT8 within
# the budget; the engine records the calibration and the gate's figures.
expect int8_gate_ok 0 "wrote" -- "$BIN" build "$M/model.onnx" -o "$TMP/int8.engine" --batch 1:64:2048 \
  --precision int8 --calib "$M/val_inputs" --calibrator percentile --calib-cache "$TMP/calib.cache" \
  --eval "$M/val_inputs" --max-auc-drop 0.001
check int8_meta "m['precision']=='int8' and len(m['calibration_sha256'])==64" "$TMP/int8.engine"
check int8_gate_figures "m['extra']['precision_assignment']['gate']['chosen_auc'] >= m['extra']['precision_assignment']['gate']['float_auc'] - 0.001 and len(m['extra']['precision_assignment']['int8_layers']) >= 4" "$TMP/int8.engine"
expect calib_cache_written 0 "clickrt-calibration-cache 1" -- head -1 "$TMP/calib.cache"
# The cache is reused on a rebuild, and the build is byte-identical.
expect int8_cache_reused 0 "reused" -- env SOURCE_DATE_EPOCH=0 "$BIN" build "$M/model.onnx" -o "$TMP/a.engine" \
  --batch 1:64:2048 --precision int8 --calib "$M/val_inputs" --calibrator percentile --calib-cache "$TMP/calib.cache"
expect int8_deterministic 0 "wrote" -- env SOURCE_DATE_EPOCH=0 "$BIN" build "$M/model.onnx" -o "$TMP/b.engine" \
  --batch 1:64:2048 --precision int8 --calib "$M/val_inputs" --calibrator percentile --calib-cache "$TMP/calib.cache"
expect int8_same_bytes 0 "" -- cmp "$TMP/a.engine" "$TMP/b.engine"
# A cache made with another calibrator is refused, naming the field.
expect cache_mismatch 1 "calibrator: expected 'minmax', found 'percentile'" -- "$BIN" build "$M/model.onnx" \
  -o "$TMP/c.engine" --precision int8 --calib "$M/val_inputs" --calibrator minmax --calib-cache "$TMP/calib.cache"
# The int8 engine scores the sample request close to the fp32 engine.
expect fp32_build 0 "wrote" -- "$BIN" build "$M/model.onnx" -o "$TMP/fp32.engine" --batch 1:64:2048
expect int8_runs 0 "prob" -- "$BIN" run --engine "$TMP/int8.engine" --inputs "$M/sample_inputs"

# An unrepresentative calibration set: cold-start rows (every dense feature missing). The gate
# catches it: the all-INT8 engine loses far more than the budget; with --no-mixed the build fails
# with the figures, without it the sensitive layers stay in fp32.
awk -F'\t' 'BEGIN{OFS="\t"} NR<=1000 {for(i=2;i<=14;i++) $i=""; print}' "$M/val.tsv" > "$TMP/cold.tsv"
expect gate_catches_cold_start 1 "accuracy budget cannot be met: the all-INT8 engine loses" -- "$BIN" build \
  "$M/model.onnx" -o "$TMP/cold.engine" --precision int8 --calib "$TMP/cold.tsv" --schema "$M/schema.json" \
  --calibrator percentile --eval "$M/val_inputs" --no-mixed
expect no_engine_written 1 "" -- test -e "$TMP/cold.engine"
expect gate_mixed 0 "fp32" -- "$BIN" build "$M/model.onnx" -o "$TMP/mixed.engine" --precision int8 \
  --calib "$TMP/cold.tsv" --schema "$M/schema.json" --calibrator percentile --eval "$M/val_inputs"
check gate_kept_float "len(m['extra']['precision_assignment']['float_layers']) >= 1 and m['extra']['precision_assignment']['gate']['chosen_auc'] >= m['extra']['precision_assignment']['gate']['float_auc'] - 0.001" "$TMP/mixed.engine"

# Row-wise quantized embeddings in an fp32 engine: the table shrinks (int8 rows of 8 values: 16
# bytes instead of 32; int4: 8).
expect emb_int8 0 "wrote" -- "$BIN" build "$M/model.onnx" -o "$TMP/emb8.engine" --embeddings int8
check emb_int8_bytes "m['extra']['precision_assignment']['embedding_bytes'][1]*2 == m['extra']['precision_assignment']['embedding_bytes'][0]" "$TMP/emb8.engine"
expect emb_int4 0 "wrote" -- "$BIN" build "$M/model.onnx" -o "$TMP/emb4.engine" --embeddings int4
check emb_int4_bytes "m['extra']['precision_assignment']['embedding_bytes'][1]*4 == m['extra']['precision_assignment']['embedding_bytes'][0]" "$TMP/emb4.engine"

# Bad flags: clear errors.
expect int8_needs_calib 1 "needs --calib" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --precision int8
expect calib_needs_int8 1 "--calib is for --precision int8" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" \
  --calib "$M/val_inputs"
expect bad_embeddings 1 "unknown embedding format 'int2'" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" \
  --embeddings int2
expect bad_calibrator 1 "entropy" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --precision int8 \
  --calib "$M/val_inputs" --calibrator kl
expect missing_calib_data 3 "nope" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --precision int8 \
  --calib "$TMP/nope"
expect eval_needs_labels 1 "label" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --precision int8 \
  --calib "$M/val_inputs" --eval "$M/sample_inputs"

finish "int8 build"
