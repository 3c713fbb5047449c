#!/usr/bin/env python3
"""ONNX Runtime's own static quantization (QDQ) of a model, and ORT's outputs on it.

For the machine where the onnxruntime Python package is installed (the GPU host: onnxruntime 1.30):
quantizes MODEL with onnxruntime.quantization.quantize_static — QDQ format, per-channel int8
weights, int8 activations, ActivationSymmetric=True, MinMax calibration over the rows of INPUTS —
writes the quantized model, and runs it (and the float model) with ORT's CPU provider over the
same rows, writing each output as <name>.pb (ONNX TensorProto). clickrt's outputs on the very
same quantized model then compare directly; with --clickrt BIN this script builds and runs that
engine itself and prints the differences.

  python3 bench/ort_quantize.py --model models/deepfm/model.onnx \
      --inputs models/deepfm/val_inputs --out /tmp/qdq/deepfm_qdq.onnx \
      --save-outputs /tmp/qdq/deepfm_ort [--clickrt build/bin/clickrt]

--op-types MatMul,Gemm restricts quantization to the GEMMs (as python/make_qdq_models.py's
fixtures do); the default is ORT's own default (every op type it knows).
--exclude-output-quantization adds OpTypesToExcludeOutputQuantization = those GEMMs, so their
outputs are not fake-quantized and clickrt can fuse Relu / the DCN-v2 cross layer into the INT8
layers (docs/QUANTIZATION.md, "Explicit quantization (QDQ)").
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def read_dir(folder, names):
    feeds = {}
    for name in names:
        t = onnx.TensorProto()
        with open(os.path.join(folder, name + ".pb"), "rb") as f:
            t.ParseFromString(f.read())
        feeds[name] = numpy_helper.to_array(t)
    return feeds


def write_dir(folder, tensors):
    os.makedirs(folder, exist_ok=True)
    for name, a in tensors.items():
        with open(os.path.join(folder, name + ".pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.ascontiguousarray(a), name).SerializeToString())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="float ONNX model")
    ap.add_argument("--inputs", required=True, help="folder of <input>.pb (calibration and test rows)")
    ap.add_argument("--out", required=True, help="quantized model to write")
    ap.add_argument("--save-outputs", required=True, help="folder for ORT's outputs on the quantized model")
    ap.add_argument("--float-outputs", help="folder for ORT's outputs on the float model (default: "
                    "<save-outputs>_float)")
    ap.add_argument("--op-types", default="", help="op_types_to_quantize, comma-separated (default: ORT's)")
    ap.add_argument("--exclude-output-quantization", action="store_true",
                    help="extra_options OpTypesToExcludeOutputQuantization = MatMul, Gemm")
    ap.add_argument("--calib-batch", type=int, default=256, help="rows per calibration batch")
    ap.add_argument("--clickrt", help="clickrt binary: build the quantized model for the cpu backend, "
                    "run it on the rows and compare with ORT")
    args = ap.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    names = [i.name for i in onnx.load(args.model, load_external_data=False).graph.input]
    feeds = read_dir(args.inputs, names)
    rows = next(iter(feeds.values())).shape[0]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= rows:
                return None
            end = min(rows, self.start + args.calib_batch)
            batch = {k: v[self.start:end] for k, v in feeds.items()}
            self.start = end
            return batch

        def rewind(self):
            self.start = 0

    extra = {"ActivationSymmetric": True}
    if args.exclude_output_quantization:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul", "Gemm"]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    quantize_static(args.model, args.out, Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=[t for t in args.op_types.split(",") if t] or None,
                    per_channel=True, reduce_range=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options=extra)
    counts = {}
    for n in onnx.load(args.out).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    print(f"onnxruntime {ort.__version__}: wrote {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    def run(model):
        s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        outs = s.run(None, feeds)
        return {o.name: v for o, v in zip(s.get_outputs(), outs)}

    q_out = run(args.out)
    f_out = run(args.model)
    write_dir(args.save_outputs, q_out)
    write_dir(args.float_outputs or args.save_outputs.rstrip("/") + "_float", f_out)
    for name in q_out:
        d = np.abs(q_out[name].astype(np.float64) - f_out[name])
        print(f"ORT int8 vs ORT float, {name}: max |diff| {d.max():.3g}, mean {d.mean():.3g}")

    if args.clickrt:
        engine = os.path.splitext(args.out)[0] + ".engine"
        got_dir = args.save_outputs.rstrip("/") + "_clickrt"
        subprocess.run([args.clickrt, "build", args.out, "-o", engine, "--batch", f"1:{rows}:{rows}"],
                       check=True)
        subprocess.run([args.clickrt, "run", "--engine", engine, "--inputs", args.inputs,
                        "--save-outputs", got_dir], check=True, stdout=subprocess.DEVNULL)
        got = read_dir(got_dir, list(q_out))
        for name in q_out:
            d = np.abs(got[name].astype(np.float64) - q_out[name])
            print(f"clickrt vs ORT on {os.path.basename(args.out)}, {name}: max |diff| {d.max():.3g}, "
                  f"mean {d.mean():.3g}, rows within 1e-5: {(d <= 1e-5).mean() * 100:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
