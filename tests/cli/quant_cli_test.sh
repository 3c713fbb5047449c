#!/usr/bin/env bash
# `clickrt calibrate` and `clickrt eval` on the bundled DeepFM: a cache is written and then reused,
# a cache made for other settings is an error naming the field (replaced with --overwrite), a
# corrupt one names its line; eval prints the AUC scikit-learn computes for these rows.
# Usage: quant_cli_test.sh CLICKRT_BINARY SOURCE_DIR
set -u
BIN="$1"
SRC="$2"
M="$SRC/models/deepfm"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
EXPECT_ERE=1
source "$(dirname "$0")/expect.sh"

C="$TMP/deepfm.calib"
expect calibrate_help 0 "--calibrator" -- "$BIN" calibrate --help
expect calibrate_writes 0 "wrote .*deepfm.calib: 5 tensors, percentile" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C"
expect cache_magic 0 "^clickrt-calibration-cache 1$" -- head -1 "$C"
expect cache_tensor 0 "^tensor	/Concat_output_0	0x" -- cat "$C"
expect calibrate_table 0 "/dnn/dnn.1/Relu_output_0 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C"
cp "$C" "$TMP/before.calib"
# The same rows from the tensor folder: same key, reused, the file untouched.
expect calibrate_reuses 0 "matches .*reused" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val_inputs" -o "$C"
expect cache_untouched 0 "" -- cmp "$C" "$TMP/before.calib"
expect calibrator_mismatch 1 "calibrator: expected 'minmax', found 'percentile'" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C" --calibrator minmax
expect batch_mismatch 1 "batch_size: expected '128', found '256'" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C" --batch 128
expect rows_mismatch 1 "rows: expected '100', found '2000'" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C" --max-rows 100
expect model_mismatch 1 "model_sha256: expected" -- \
  "$BIN" calibrate "$SRC/models/dcnv2/model.onnx" --data "$SRC/models/dcnv2/val.tsv" -o "$C"
expect overwrite 0 "wrote .*percentile=99.9,bins=2048" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$C" --calibrator percentile \
  --percentile 99.9 --overwrite
expect minmax_clips_nothing 0 "/Concat_output_0 +13.7291 +13.7291 +0.108103 +0.0000" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$TMP/minmax.calib" --calibrator minmax
sed 's/^rows 2000$/rows two/' "$C" >"$TMP/corrupt.calib"
expect corrupt_cache 5 "corrupt.calib:7: rows must be an integer" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$TMP/corrupt.calib"
expect bad_calibrator 1 "unknown calibrator 'kl'" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$M/val.tsv" -o "$TMP/x.calib" --calibrator kl
expect missing_data 3 "does not exist" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$TMP/none.tsv" -o "$TMP/x.calib"
printf '0\t1\n' >"$TMP/short.tsv"
expect bad_tsv 1 "short.tsv:1: 2 tab-separated columns" -- \
  "$BIN" calibrate "$M/model.onnx" --data "$TMP/short.tsv" --schema "$M/schema.json" -o "$TMP/x.calib"

# eval: the AUC / logloss sklearn.metrics computes from val_labels.pb and the reference scores
# (0.8267697220, 0.4173795439; metadata.json's val_auc is on 50000 rows, not these 2000).
expect eval_onnx 0 "model +.*model.onnx +reference executor +0.826770 +0.417380" -- \
  "$BIN" eval "$M/model.onnx" --data "$M/val.tsv"
expect eval_json 0 '"auc":0.82676972' -- "$BIN" eval "$M/model.onnx" --data "$M/val_inputs" --json
expect build 0 "wrote" -- "$BIN" build "$M/model.onnx" -o "$TMP/deepfm.engine" --batch 1:64:512
expect eval_engine_vs_onnx 0 "AUC drop \(baseline - model\): -?0.00000" -- \
  "$BIN" eval "$TMP/deepfm.engine" --data "$M/val.tsv" --baseline "$M/model.onnx" --batch 1000
expect eval_unlabelled 1 "has no labels" -- "$BIN" eval "$M/model.onnx" --data "$M/sample_inputs"

finish "quant cli"
