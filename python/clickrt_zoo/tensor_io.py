"""Tensors as ONNX TensorProto files: one `<name>.pb` per tensor in a folder.

This is how inputs are handed to `clickrt run --inputs DIR` and how it hands outputs back
(`--save-outputs DIR`).
"""
import json
import os
from typing import Any, Dict

import numpy as np
import onnx
from onnx import numpy_helper


def write_tensor(path: str, name: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(np.ascontiguousarray(array), name=name).SerializeToString())


def read_tensor(path: str) -> np.ndarray:
    proto = onnx.TensorProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return numpy_helper.to_array(proto)


def write_tensor_dir(directory: str, tensors: Dict[str, np.ndarray]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, array in tensors.items():
        write_tensor(os.path.join(directory, f"{name}.pb"), name, array)


def read_tensor_dir(directory: str) -> Dict[str, np.ndarray]:
    out = {}
    for entry in sorted(os.listdir(directory)):
        if entry.endswith(".pb"):
            out[entry[:-3]] = read_tensor(os.path.join(directory, entry))
    return out


def write_json(path: str, obj: Any) -> None:
    """JSON with one key per line but short lists of numbers on one line (readable diffs)."""
    with open(path, "w") as f:
        f.write(_format(obj, 0) + "\n")


def _format(obj: Any, depth: int) -> str:
    flat = json.dumps(obj)
    if not isinstance(obj, (dict, list)) or len(flat) <= 100 or (
            isinstance(obj, list) and all(not isinstance(v, dict) for v in obj)):
        return flat
    pad = " " * (depth + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {_format(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    items = [pad + _format(v, depth + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * depth + "]"
