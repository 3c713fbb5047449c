#!/usr/bin/env bash
# The clickrt CLI as a user runs it: good input works, bad input gives a clear error naming what
# and where, a non-zero exit code, and never a crash (exit code >= 128 would be a signal).
# Usage: cli_test.sh CLICKRT_BINARY SOURCE_DIR
set -u
BIN="$1"
SRC="$2"
DATA=/usr/share/libonnx-testdata/data/node
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/expect.sh"

expect help 0 "run" -- "$BIN" --help
expect run_help 0 "--inputs" -- "$BIN" run --help
expect info_help 0 "unsupported" -- "$BIN" info --help
expect no_subcommand 2 "" -- "$BIN"
expect bad_flag 2 "" -- "$BIN" run --bogus

# A real ONNX test model, its inputs as a folder of TensorProto files.
expect info_ok 0 "Gather 1" -- "$BIN" info "$DATA/test_gather_0/model.onnx"
expect run_ok 0 "float32\[3,4,3,2\]" -- "$BIN" run --model "$DATA/test_gather_0/model.onnx" \
  --inputs "$DATA/test_gather_0/test_data_set_0"
expect run_json 0 '"dtype":"float32"' -- "$BIN" run --json --model "$DATA/test_gather_0/model.onnx" \
  --inputs "$DATA/test_gather_0/test_data_set_0"

# JSON inputs.
python3 -c 'import json; print(json.dumps({"x": [[[(-1) ** k * k for k in range(5)] for j in range(4)] for i in range(3)]}))' >"$TMP/in.json"
expect run_json_input 0 "0 0 2 0 4" -- "$BIN" run --model "$DATA/test_relu/model.onnx" --inputs "$TMP/in.json"
echo '{"x": [[1, -2], [3]]}' >"$TMP/ragged.json"
expect ragged_json 1 "ragged" -- "$BIN" run --model "$DATA/test_relu/model.onnx" --inputs "$TMP/ragged.json"
echo '{"nope": [1]}' >"$TMP/unknown.json"
expect unknown_input 1 "unknown input 'nope'" -- "$BIN" run --model "$DATA/test_relu/model.onnx" \
  --inputs "$TMP/unknown.json"
echo '{}' >"$TMP/empty.json"
expect missing_input 3 "missing input 'x'" -- "$BIN" run --model "$DATA/test_relu/model.onnx" \
  --inputs "$TMP/empty.json"
echo '{"x": [1, 2]}' >"$TMP/rank.json"
expect rank_mismatch 1 "rank mismatch" -- "$BIN" run --model "$DATA/test_relu/model.onnx" \
  --inputs "$TMP/rank.json"

# Corrupt, truncated, missing and unsupported models.
head -c 100 "$DATA/test_gather_0/model.onnx" >"$TMP/truncated.onnx"
expect truncated 5 "truncated.onnx" -- "$BIN" info "$TMP/truncated.onnx"
head -c 4096 /dev/urandom >"$TMP/garbage.onnx"
expect garbage 5 "garbage.onnx" -- "$BIN" run --model "$TMP/garbage.onnx" --inputs "$TMP/in.json"
: >"$TMP/empty.onnx"
expect empty_model 5 "empty" -- "$BIN" info "$TMP/empty.onnx"
expect missing_model 3 "does not exist" -- "$BIN" info "$TMP/none.onnx"
expect unsupported_info 0 "Conv 'test_conv_with_strides_padding'\|Conv '" -- "$BIN" info \
  "$DATA/test_conv_with_strides_padding/model.onnx"
expect unsupported_run 4 "op 'Conv'" -- "$BIN" run --model "$DATA/test_conv_with_strides_padding/model.onnx" \
  --inputs "$DATA/test_conv_with_strides_padding/test_data_set_0"

# Out-of-range embedding id: names the input and the position.
python3 -c 'import json; print(json.dumps({"data": [[[[0.5] * 2] * 3] * 4] * 5, "indices": [0, 9, 1]}))' >"$TMP/gather.json"
expect bad_id 1 "index 9 at \[1\]" -- "$BIN" run --model "$DATA/test_gather_0/model.onnx" --inputs "$TMP/gather.json"

# Saved outputs are ONNX TensorProto files that clickrt reads back.
expect save 0 "" -- "$BIN" run --model "$DATA/test_gather_0/model.onnx" \
  --inputs "$DATA/test_gather_0/test_data_set_0" --save-outputs "$TMP/out"
[[ -s "$TMP/out/y.pb" ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL save: no y.pb"; }

# build / inspect / run --engine / bench on a real ONNX test model.
M="$DATA/test_gather_0"
expect build_ok 0 "memory plan" -- "$BIN" build "$M/model.onnx" -o "$TMP/g.engine" --batch 1:2:8
expect build_help 0 "min:opt:max\|MIN:OPT:MAX" -- "$BIN" build --help
expect inspect_ok 0 '"format_version": 1' -- "$BIN" inspect "$TMP/g.engine"
expect run_engine 0 "float32\[3,4,3,2\]" -- "$BIN" run --engine "$TMP/g.engine" --inputs "$M/test_data_set_0"
"$BIN" run --engine "$TMP/g.engine" --inputs "$M/test_data_set_0" --json >"$TMP/e.json" 2>/dev/null
"$BIN" run --model "$M/model.onnx" --inputs "$M/test_data_set_0" --json >"$TMP/m.json" 2>/dev/null
if cmp -s "$TMP/e.json" "$TMP/m.json"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL engine output differs from reference"; fi
expect bench_ok 0 "p99" -- "$BIN" bench "$TMP/g.engine" --iterations 20 --warmup 2 --inputs "$M/test_data_set_0"
expect bench_json 0 '"samples_per_s"' -- "$BIN" bench "$TMP/g.engine" --iterations 5 --warmup 1 --json \
  --inputs "$M/test_data_set_0"
expect bad_profile 1 "min <= opt <= max" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --batch 8:4:16
expect bad_batch_syntax 1 "MIN:OPT:MAX" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --batch 1:x
if ! nvidia-smi -L >/dev/null 2>&1; then  # a cuda build tunes on a GPU: without one it says so
  expect cuda_without_gpu 1 "needs a GPU" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --backend cuda
fi
expect cuda_precision 4 "precision 'int4'" -- "$BIN" build "$M/model.onnx" -o "$TMP/x.engine" --precision int4
expect unsupported_build 4 "Conv" -- "$BIN" build "$DATA/test_conv_with_strides_padding/model.onnx" -o "$TMP/x.engine"
# Corrupt and foreign engine files.
head -c 200 "$TMP/g.engine" >"$TMP/trunc.engine"
expect truncated_engine 5 "trunc.engine" -- "$BIN" inspect "$TMP/trunc.engine"
expect foreign_engine 1 "magic" -- "$BIN" run --engine "$M/model.onnx" --inputs "$M/test_data_set_0"
cp "$TMP/g.engine" "$TMP/flip.engine"
printf '\xff' | dd of="$TMP/flip.engine" bs=1 seek=300 conv=notrunc status=none
expect corrupt_engine 5 "checksum" -- "$BIN" run --engine "$TMP/flip.engine" --inputs "$M/test_data_set_0"
expect missing_engine 3 "" -- "$BIN" bench "$TMP/none.engine"

finish "cli"
