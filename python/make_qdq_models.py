#!/usr/bin/env python3
"""Writes models/<name>/model_qdq.onnx: the model in ONNX Runtime's QDQ layout, for clickrt's tests.

The layout is what onnxruntime.quantization.quantize_static(model, out, reader,
quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
weight_type=QuantType.QInt8, op_types_to_quantize=OPS, extra_options={"ActivationSymmetric": True})
writes (onnxruntime 1.2x), redone here with numpy because onnxruntime is not installed where the
fixtures are made. bench/ort_quantize.py runs the real thing on a machine that has it.

For every node whose op type is in OPS (default MatMul, Gemm):
  - each float initializer input (the weight) becomes <w>_quantized (int8), <w>_scale (float32
    [C]) and <w>_zero_point (int8 [C], zeros), one scale per channel along the output axis
    (MatMul: axis 1 of [K, N]; Gemm: axis 0 when transB=1, else 1), read by a DequantizeLinear
    named <w>_DequantizeLinear with output <w>_DequantizeLinear_Output and that axis:
    scale = max|w| / 127 over the channel (computed as 2 max|w| / 254 in float64), codes =
    clip(round_half_even(w / scale), -127, 127);
  - Gemm's bias becomes <b>_quantized (int32), <b>_quantized_scale (= input scale * weight scale,
    float32 [C]) and <b>_quantized_zero_point (int32 zeros), read by <b>_DequantizeLinear
    (axis 0 when C > 1) whose output keeps the name <b>;
  - each float activation input and (unless --exclude-output-quantization, ORT's extra option
    OpTypesToExcludeOutputQuantization=OPS) each output t gets t -> QuantizeLinear
    (t_QuantizeLinear, output t_QuantizeLinear_Output) -> DequantizeLinear (t_DequantizeLinear,
    output t_DequantizeLinear_Output) with scalars t_scale (float32) and t_zero_point (int8, 0);
    every reader of t then reads t_DequantizeLinear_Output (for a graph output the producer
    writes t_QuantizeLinear_Input and the DequantizeLinear writes t). The scale is symmetric
    min-max over the calibration data: max(|min|, |max|) / 127, min and max taken with 0 included
    (ORT's MinMax calibrator without moving average and its compute_scale_zp).
The calibration data is models/<name>/val_inputs (all rows, one batch: min-max does not depend on
the batching). The float model is evaluated with a small numpy interpreter of the ops the zoo's
models use.

Usage: /usr/bin/python3 python/make_qdq_models.py [--exclude-output-quantization]
           [--ops MatMul,Gemm] [--out PATH] MODEL_DIR
  e.g. python/make_qdq_models.py models/deepfm
       python/make_qdq_models.py --exclude-output-quantization models/dcnv2
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


# ---- a numpy interpreter of the float model (for calibration) ----

def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _reduce_axes(node, ins):
    if len(ins) > 1 and ins[1] is not None:
        return tuple(int(a) for a in ins[1])
    axes = _attr(node, "axes", None)
    return None if axes is None else tuple(axes)


def _gemm(node, a, b, c=None):
    if _attr(node, "transA", 0):
        a = a.T
    if _attr(node, "transB", 0):
        b = b.T
    y = _attr(node, "alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + _attr(node, "beta", 1.0) * c
    return y.astype(np.float32)


OPS = {
    "Identity": lambda n, x: x,
    "Greater": lambda n, a, b: a > b,
    "Less": lambda n, a, b: a < b,
    "And": lambda n, a, b: np.logical_and(a, b),
    "Shape": lambda n, x: np.array(x.shape, dtype=np.int64),
    "Where": lambda n, c, x, y: np.where(c, x, y),
    "Add": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "Relu": lambda n, x: np.maximum(x, 0).astype(x.dtype),
    "Log": lambda n, x: np.log(x),
    "Sigmoid": lambda n, x: (1 / (1 + np.exp(-x))).astype(x.dtype),
    "MatMul": lambda n, a, b: (a @ b).astype(np.float32),
    "Gemm": _gemm,
    "Gather": lambda n, d, i: np.take(d, i, axis=_attr(n, "axis", 0)),
    "Concat": lambda n, *xs: np.concatenate(xs, axis=_attr(n, "axis", 0)),
    "Flatten": lambda n, x: x.reshape(int(np.prod(x.shape[:_attr(n, "axis", 1)])), -1),
    "Reshape": lambda n, x, s: x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(s)]),
}


def evaluate(model, feeds):
    """Every tensor of the graph (initializers, inputs, node outputs) on `feeds`, by name."""
    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env.update(feeds)
    for node in model.graph.node:
        ins = [env[i] if i else None for i in node.input]
        if node.op_type == "Constant":
            out = numpy_helper.to_array(_attr(node, "value", None))
        elif node.op_type == "ConstantOfShape":
            v = _attr(node, "value", None)
            fill = numpy_helper.to_array(v) if v is not None else np.zeros(1, np.float32)
            out = np.full(tuple(ins[0]), fill.reshape(-1)[0], dtype=fill.dtype)
        elif node.op_type == "ReduceSum":
            out = np.sum(ins[0], axis=_reduce_axes(node, ins), keepdims=bool(_attr(node, "keepdims", 1)))
        elif node.op_type in OPS:
            out = OPS[node.op_type](node, *ins)
        else:
            raise SystemExit(f"make_qdq_models: no numpy evaluation of {node.op_type} ({node.name})")
        env[node.output[0]] = np.asarray(out)
    return env


# ---- ORT's arithmetic for scales and codes ----

def symmetric_scale(values):
    """ORT compute_scale_zp(symmetric=True) for int8 [-127, 127]: float32(2 * absmax / 254)."""
    rmin = np.minimum(np.float32(values.min()), np.float32(0))
    rmax = np.maximum(np.float32(values.max()), np.float32(0))
    absmax = np.maximum(np.abs(rmin), np.abs(rmax))
    dr = np.float64(absmax - (-absmax))
    scale = dr / np.float64(254.0)
    if scale < np.finfo(np.float32).tiny:
        return np.float32(1.0)
    return np.float32(scale)


def quantize_codes(values, scale):
    """ORT quantize_nparray for int8 with zero point 0 (symmetric range)."""
    q = np.asarray(values.astype(np.float32) / scale).round()
    return np.clip(q, -127, 127).astype(np.int8)


# ---- the QDQ rewrite ----

def quantize(model, ranges_of, ops, exclude_outputs):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    float_init = lambda name: name in inits and inits[name].data_type == TensorProto.FLOAT

    weights = {}       # name -> channel axis
    biases = {}        # name -> (input activation, weight)
    activations = []   # in order of first mention
    for node in g.node:
        if node.op_type not in ops:
            continue
        if node.op_type == "Gemm":
            tensors = [node.input[0], node.input[1]]
            weights_axis = 0 if _attr(node, "transB", 0) else 1
        else:
            tensors = list(node.input)
            weights_axis = 1
        for t in tensors:
            if float_init(t):
                weights[t] = weights_axis
            elif t not in activations:
                activations.append(t)
        if node.op_type == "Gemm" and len(node.input) > 2 and float_init(node.input[2]):
            biases[node.input[2]] = (node.input[0], node.input[1])
        if not exclude_outputs:
            for t in node.output:
                if t not in activations:
                    activations.append(t)

    new_inits, new_nodes_after = [], {}  # producer tensor -> nodes to insert after it
    scales = {}
    for t in activations:
        s = symmetric_scale(ranges_of(t))
        scales[t] = s
        new_inits += [helper.make_tensor(t + "_zero_point", TensorProto.INT8, [], [0]),
                      helper.make_tensor(t + "_scale", TensorProto.FLOAT, [], [float(s)])]
    weight_scales = {}
    for w, axis in weights.items():
        data = numpy_helper.to_array(inits[w])
        moved = np.moveaxis(data, axis, 0)
        s = np.array([symmetric_scale(moved[c]) for c in range(moved.shape[0])], dtype=np.float32)
        codes = np.moveaxis(np.stack([quantize_codes(moved[c], s[c]) for c in range(moved.shape[0])]),
                            0, axis)
        weight_scales[w] = s
        new_inits += [numpy_helper.from_array(np.ascontiguousarray(codes), w + "_quantized"),
                      helper.make_tensor(w + "_scale", TensorProto.FLOAT, [len(s)], s.tolist()),
                      helper.make_tensor(w + "_zero_point", TensorProto.INT8, [len(s)], [0] * len(s))]
    for b, (x, w) in biases.items():
        data = numpy_helper.to_array(inits[b])
        bias_scale = scales[x] * weight_scales[w]  # float32
        q = np.clip((data.astype(np.float64) / bias_scale.astype(np.float64)).round(),
                    np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        name = b + "_quantized"
        new_inits += [numpy_helper.from_array(q.reshape(data.shape), name),
                      numpy_helper.from_array(bias_scale.astype(np.float32).reshape(-1), name + "_scale")]
        if bias_scale.size > 1:
            new_inits.append(numpy_helper.from_array(np.zeros(bias_scale.size, np.int32), name + "_zero_point"))
        else:
            new_inits.append(helper.make_tensor(name + "_zero_point", TensorProto.INT32, [], [0]))

    # Readers of a quantized activation read its DQ output; weights read theirs.
    rename = {t: t + "_DequantizeLinear_Output" for t in activations if t not in graph_outputs}
    rename.update({w: w + "_DequantizeLinear_Output" for w in weights})
    out_rename = {t: t + "_QuantizeLinear_Input" for t in activations if t in graph_outputs}

    def qdq_pair(t):
        src = out_rename.get(t, t)
        dst = t if t in graph_outputs else t + "_DequantizeLinear_Output"
        return [helper.make_node("QuantizeLinear", [src, t + "_scale", t + "_zero_point"],
                                 [t + "_QuantizeLinear_Output"], t + "_QuantizeLinear"),
                helper.make_node("DequantizeLinear",
                                 [t + "_QuantizeLinear_Output", t + "_scale", t + "_zero_point"],
                                 [dst], t + "_DequantizeLinear")]

    nodes = []
    # Weight and bias DequantizeLinears, and pairs on graph inputs, come first (topological).
    for w, axis in weights.items():
        nodes.append(helper.make_node("DequantizeLinear", [w + "_quantized", w + "_scale", w + "_zero_point"],
                                      [w + "_DequantizeLinear_Output"], w + "_DequantizeLinear", axis=axis))
    for b in biases:
        name = b + "_quantized"
        kw = {"axis": 0} if numpy_helper.to_array(inits[b]).size > 1 else {}
        nodes.append(helper.make_node("DequantizeLinear", [name, name + "_scale", name + "_zero_point"],
                                      [b], b + "_DequantizeLinear", **kw))
    for i in g.input:
        if i.name in activations:
            nodes += qdq_pair(i.name)
    for node in g.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        for k, name in enumerate(n.input):
            if name in rename:
                n.input[k] = rename[name]
        for k, name in enumerate(n.output):
            if name in out_rename:
                n.output[k] = out_rename[name]
        nodes.append(n)
        for t in node.output:
            if t in activations:
                nodes += qdq_pair(t)

    removed = set(weights) | set(biases)
    kept = [t for t in g.initializer if t.name not in removed]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    del g.value_info[:]
    model.producer_name = "onnx.quantize"
    model.producer_version = "0.1.0"
    return model


def read_inputs(folder, graph):
    feeds = {}
    for i in graph.input:
        t = TensorProto()
        with open(os.path.join(folder, i.name + ".pb"), "rb") as f:
            t.ParseFromString(f.read())
        feeds[i.name] = numpy_helper.to_array(t)
    return feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ops", default="MatMul,Gemm",
                    help="op_types_to_quantize: MatMul and / or Gemm (comma-separated)")
    ap.add_argument("--exclude-output-quantization", action="store_true",
                    help="ORT extra option OpTypesToExcludeOutputQuantization = the --ops")
    ap.add_argument("--out", help="default: MODEL_DIR/model_qdq.onnx")
    args = ap.parse_args()
    model = onnx.load(os.path.join(args.model_dir, "model.onnx"))
    env = evaluate(model, read_inputs(os.path.join(args.model_dir, "val_inputs"), model.graph))
    ops = set(args.ops.split(","))
    if not ops <= {"MatMul", "Gemm"}:
        raise SystemExit("make_qdq_models: --ops takes MatMul and / or Gemm (other op types' QDQ "
                         "layouts are not reproduced here; bench/ort_quantize.py runs ORT itself)")
    model = quantize(model, lambda t: env[t], ops, args.exclude_output_quantization)
    onnx.checker.check_model(model)
    out = args.out or os.path.join(args.model_dir, "model_qdq.onnx")
    onnx.save(model, out)
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    print(f"wrote {out} ({os.path.getsize(out)} bytes): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
