"""ONNX export (torch.onnx.export, TorchScript exporter, opset 17, dynamic batch) and the
check that the exported graph stays within the ops clickrt supports."""
import collections
import os
from typing import Dict, Optional

import numpy as np
import onnx
import torch

from .models import CTRModel

OPSET = 17
OUTPUT_NAME = "prob"

# The ops clickrt's importer accepts (issue 3). An exported model must use only these.
SUPPORTED_OPS = frozenset("""
Gather GatherElements Add Sub Mul Div Pow Sqrt Neg Exp Log MatMul Gemm Relu LeakyRelu PRelu
Sigmoid Tanh Softmax Concat Split Slice Reshape Flatten Squeeze Unsqueeze Transpose Expand Tile
ReduceSum ReduceMean ReduceMax Shape Constant ConstantOfShape Cast Identity Where Equal Greater
Less Not And BatchNormalization LayerNormalization Dropout Sum
""".split())


def example_inputs(model: CTRModel, batch: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random but valid inputs for `model` (ids inside each field's vocabulary; DIN histories
    of random length, padded with 0 at the end)."""
    rng = np.random.default_rng(seed)
    cfg = model.cfg
    out = {}
    if "dense" in model.input_names:
        dense = rng.geometric(0.05, size=(batch, cfg.num_dense)).astype(np.float32) - 1
        dense[rng.random(dense.shape) < 0.2] = 0
        out["dense"] = dense
    sizes = np.asarray(cfg.field_sizes, dtype=np.int64)
    out["sparse"] = (rng.random((batch, len(sizes))) * sizes).astype(np.int64)
    if "hist_items" in model.input_names:
        lengths = rng.integers(0, cfg.hist_len + 1, size=batch)
        pos = np.arange(cfg.hist_len)[None, :]
        keep = pos < lengths[:, None]
        out["hist_items"] = np.where(keep, rng.integers(1, cfg.num_items, (batch, cfg.hist_len)), 0)
        out["hist_cats"] = np.where(keep, rng.integers(1, cfg.num_cats, (batch, cfg.hist_len)), 0)
        out["target_item"] = rng.integers(1, cfg.num_items, size=batch)
        out["target_cat"] = rng.integers(1, cfg.num_cats, size=batch)
    return {name: out[name] for name in model.input_names}


def torch_predict(model: CTRModel, inputs: Dict[str, np.ndarray]) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        args = [torch.from_numpy(np.asarray(inputs[n])) for n in model.input_names]
        return model(*args).numpy()


def op_histogram(model_proto: onnx.ModelProto) -> Dict[str, int]:
    """op_type -> count over the main graph (the zoo's models have no subgraphs)."""
    return dict(sorted(collections.Counter(n.op_type for n in model_proto.graph.node).items()))


def unsupported_ops(histogram: Dict[str, int]) -> Dict[str, int]:
    return {op: n for op, n in histogram.items() if op not in SUPPORTED_OPS}


def export_onnx(model: CTRModel, path: str, external_data: bool = False,
                example_batch: int = 4) -> onnx.ModelProto:
    """Exports `model` (eval mode) to `path` with a dynamic batch dimension on every input
    and on the output "prob" [batch, 1]. Raises ValueError if an op outside SUPPORTED_OPS
    appears. With external_data, tensors over 1 MiB go to `<path>.data` beside the model."""
    model.eval()
    inputs = example_inputs(model, example_batch)
    args = tuple(torch.from_numpy(inputs[n]) for n in model.input_names)
    dynamic = {n: {0: "batch"} for n in model.input_names}
    dynamic[OUTPUT_NAME] = {0: "batch"}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=list(model.input_names),
                          output_names=[OUTPUT_NAME], dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True)
    proto = onnx.load(path)
    bad = unsupported_ops(op_histogram(proto))
    if bad:
        raise ValueError(f"exported {model.name} uses ops clickrt does not support: {bad}")
    onnx.checker.check_model(proto)
    if external_data:
        data_name = os.path.basename(path) + ".data"
        data_path = os.path.join(os.path.dirname(os.path.abspath(path)), data_name)
        if os.path.exists(data_path):
            os.remove(data_path)
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1 << 20)
    return proto


def describe(proto: onnx.ModelProto) -> Dict[str, list]:
    """Graph inputs/outputs as {name: [elem_type name, dims with 'batch' for the dynamic one]}."""
    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    init = {i.name for i in proto.graph.initializer}
    spec = {}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        if vi.name not in init:
            elem = onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)
            spec[vi.name] = [elem.lower(), dims(vi)]
    return spec


def max_abs_diff(a: np.ndarray, b: Optional[np.ndarray]) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
