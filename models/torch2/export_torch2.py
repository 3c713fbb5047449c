"""Exports small versions of the zoo's models with PyTorch 2.x, twice each: the dynamo exporter
(torch.onnx.export(..., dynamo=True)) and the TorchScript one (dynamo=False), batch dynamic.

For each <model>_<exporter> it writes model.onnx (one file, weights inside), sample_inputs/
<input>.pb (random valid inputs, batch 5) and expected_outputs/<output>.pb (what torch computed),
as ONNX TensorProto files; tests/passes/passes_test.cc checks clickrt against them.

Usage, from the repository root, where torch >= 2.5, onnx and onnxscript are installed:
    python3 models/torch2/export_torch2.py OUT_DIR
It also packs OUT_DIR into OUT_DIR/torch2.tar.gz and prints a summary (opsets, op histograms,
onnxruntime's agreement when it is installed). The committed fixtures came from PyTorch 2.11.
"""
import collections
import os
import sys
import tarfile
import time
import traceback

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from clickrt_zoo.export import example_inputs  # noqa: E402
from clickrt_zoo.models import build_model  # noqa: E402

FIELDS = (20, 15, 25, 20, 10, 30, 20, 5)
# Small widths, the published layer structure (DeepFM 3 ReLU layers, DCN-v2 3 cross + 3 DNN
# layers, DIN attention 80-40 and DNN 200-80 with PReLU, Wide & Deep 3 ReLU layers + crosses).
CONFIGS = {
    "deepfm": dict(field_sizes=FIELDS, embed_dim=4, dnn=(64, 64, 64)),
    "dcnv2": dict(field_sizes=FIELDS, embed_dim=4, cross_layers=3, dnn=(64, 64, 64)),
    "din": dict(field_sizes=FIELDS, embed_dim=4, num_items=60, num_cats=12, hist_len=10,
                attention=(80, 40), dnn=(200, 80)),
    "wide_deep": dict(field_sizes=FIELDS, embed_dim=4, dnn=(64, 32, 16)),
}
BATCH = 5


def histogram(proto):
    return dict(sorted(collections.Counter(n.op_type for n in proto.graph.node).items()))


def export(model, args, names, path, dynamo):
    """torch.onnx.export with a dynamic batch; returns a description of how it was called."""
    tmp = path + ".tmp.onnx"
    common = dict(input_names=list(names), output_names=["prob"])
    if not dynamo:
        axes = {n: {0: "batch"} for n in list(names) + ["prob"]}
        torch.onnx.export(model, args, tmp, dynamic_axes=axes, opset_version=17,
                          do_constant_folding=True, dynamo=False, **common)
        how = "dynamo=False, opset 17, dynamic_axes"
    else:
        batch = torch.export.Dim("batch")
        per_input = tuple({0: batch} for _ in names)
        attempts = [  # CTRModel.forward(*inputs): one varargs parameter holding every tensor
            ("dynamic_shapes=({0: Dim('batch')} per input,)", dict(dynamic_shapes=(per_input,))),
            ("dynamic_shapes={'inputs': ...}", dict(dynamic_shapes={"inputs": per_input})),
            ("dynamic_axes", dict(dynamic_axes={n: {0: "batch"} for n in list(names) + ["prob"]})),
        ]
        errors = []
        how = None
        for label, kw in attempts:
            try:
                torch.onnx.export(model, args, tmp, dynamo=True, opset_version=18, **common, **kw)
                how = f"dynamo=True, opset 18, {label}"
                break
            except Exception as e:  # noqa: BLE001 - report and try the next form
                errors.append(f"{label}: {type(e).__name__}: {e}"[:2000])
        if how is None:
            raise RuntimeError("dynamo export failed:\n" + "\n".join(errors))
        if errors:
            how += " (after: " + " | ".join(errors) + ")"
    proto = onnx.load(tmp)  # pulls in external data if the exporter wrote any
    onnx.save(proto, path)
    for f in os.listdir(os.path.dirname(path)):
        if f.startswith(os.path.basename(tmp)):
            os.remove(os.path.join(os.path.dirname(path), f))
    return how, proto


def save_tensors(folder, arrays):
    os.makedirs(folder, exist_ok=True)
    for name, a in arrays.items():
        t = numpy_helper.from_array(np.ascontiguousarray(a), name=name)
        with open(os.path.join(folder, name + ".pb"), "wb") as f:
            f.write(t.SerializeToString())


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    print("torch", torch.__version__, "onnx", onnx.__version__, flush=True)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    done = []
    for name, cfg in CONFIGS.items():
        torch.manual_seed(1)
        model = build_model(name, **cfg).eval()
        inputs = example_inputs(model, BATCH, seed=2)
        args = tuple(torch.from_numpy(inputs[n]) for n in model.input_names)
        with torch.no_grad():
            want = model(*args).numpy()
        for exporter, dynamo in (("dynamo", True), ("torchscript", False)):
            if exporter not in os.environ.get("EXPORTERS", "dynamo,torchscript").split(","):
                continue
            tag = f"{name}_{exporter}"
            folder = os.path.join(out, tag)
            os.makedirs(folder, exist_ok=True)
            start = time.time()
            try:
                with torch.no_grad():
                    how, proto = export(model, args, model.input_names,
                                        os.path.join(folder, "model.onnx"), dynamo)
            except Exception:  # noqa: BLE001 - one failure must not stop the others
                print(f"== {tag}: EXPORT FAILED\n{traceback.format_exc()[-3000:]}", flush=True)
                continue
            graph_inputs = [i.name for i in proto.graph.input]
            save_tensors(os.path.join(folder, "sample_inputs"),
                         {gi: inputs[mi] for gi, mi in zip(graph_inputs, model.input_names)})
            save_tensors(os.path.join(folder, "expected_outputs"), {proto.graph.output[0].name: want})
            opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
            size = os.path.getsize(os.path.join(folder, "model.onnx"))
            print(f"== {tag}: {how}; {time.time() - start:.1f} s; {size} bytes; opsets {opsets}; "
                  f"inputs {graph_inputs}; outputs {[o.name for o in proto.graph.output]}",
                  flush=True)
            print("   ops", histogram(proto), flush=True)
            if ort is not None:
                try:
                    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"),
                                                providers=["CPUExecutionProvider"])
                    got = sess.run(None, {gi: inputs[mi] for gi, mi in
                                          zip(graph_inputs, model.input_names)})[0]
                    print(f"   onnxruntime max |diff| vs torch: {np.abs(got - want).max():.3g}",
                          flush=True)
                except Exception as e:  # noqa: BLE001
                    print(f"   onnxruntime failed: {e}"[:1000], flush=True)
            done.append(tag)
            with tarfile.open(os.path.join(out, "torch2.tar.gz"), "w:gz") as tar:
                for t in done:
                    tar.add(os.path.join(out, t), arcname=t)
    print("exported:", done, flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "torch2_out")
