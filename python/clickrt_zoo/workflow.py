"""The steps the CLI and make_models.py share: read data, build the schema, train, export,
check, and write a model folder that clickrt can take."""
import hashlib
import os
import shutil
from typing import Dict, Optional

import numpy as np
import onnx
import torch

from . import export as ex
from .check import CheckResult, check_against
from .data.avazu import read_avazu
from .data.criteo import read_criteo
from .data.raw import RawData
from .data.schema import encode, save_schema
from .models import CTRModel
from .tensor_io import write_json, write_tensor, write_tensor_dir

FORMATS = ("criteo_tsv", "criteo_tsv_behaviour", "avazu_csv")


def read_data(path: str, data_format: str, hist_len: int = 50, max_rows: Optional[int] = None,
              log=print) -> RawData:
    if data_format == "criteo_tsv":
        raw = read_criteo(path, max_rows=max_rows)
    elif data_format == "criteo_tsv_behaviour":
        raw = read_criteo(path, behaviour=True, hist_len=hist_len, max_rows=max_rows)
    elif data_format == "avazu_csv":
        raw = read_avazu(path, max_rows=max_rows)
    else:
        raise ValueError(f"unknown data format {data_format!r}; known: {FORMATS}")
    log(raw.report.summary())
    return raw


def export_and_check(model: CTRModel, onnx_path: str, check_inputs: Dict[str, np.ndarray],
                     external_data: bool = False, log=print):
    """Exports, prints the op histogram, runs the clickrt consistency check on check_inputs.
    Returns (onnx proto, PyTorch outputs on check_inputs, CheckResult)."""
    proto = ex.export_onnx(model, onnx_path, external_data=external_data)
    log(f"exported {onnx_path}: opset {ex.OPSET}, ops {ex.op_histogram(proto)}")
    expected = ex.torch_predict(model, check_inputs)
    result = check_against(onnx_path, check_inputs, expected, log=log)
    return proto, expected, result


def slice_inputs(inputs: Dict[str, np.ndarray], rows) -> Dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[rows]) for k, v in inputs.items()}


def write_model_dir(out_dir: str, model: CTRModel, schema: dict, val_raw: RawData,
                    val_source: str, metadata: dict, val_rows: int = 2000, sample_rows: int = 8,
                    log=print) -> CheckResult:
    """Writes a model folder:
      model.onnx, schema.json, metadata.json,
      val.tsv (the first `val_rows` validation rows, verbatim from the source file),
      val_inputs/<input>.pb + val_labels.pb (the same rows, encoded),
      sample_inputs/<input>.pb (the first `sample_rows` of them),
      sample_outputs/prob.pb (PyTorch's output on sample_inputs)."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    rows = np.arange(min(val_rows, len(val_raw)))
    val = val_raw.take(rows)
    val_inputs = encode(schema, val)
    sample = slice_inputs(val_inputs, slice(0, sample_rows))
    onnx_path = os.path.join(out_dir, "model.onnx")
    proto, expected, check = export_and_check(model, onnx_path, val_inputs, log=log)
    save_schema(schema, os.path.join(out_dir, "schema.json"))
    wanted = set(val.line_numbers.tolist())
    with open(val_source, "r", newline="\n") as src, \
            open(os.path.join(out_dir, "val.tsv"), "w", newline="\n") as dst:
        for line_no, line in enumerate(src, start=1):
            if line_no in wanted:
                dst.write(line)
            if line_no >= val.line_numbers[-1]:
                break
    write_tensor_dir(os.path.join(out_dir, "val_inputs"), val_inputs)
    write_tensor(os.path.join(out_dir, "val_labels.pb"), "label", val.labels)
    write_tensor_dir(os.path.join(out_dir, "sample_inputs"), sample)
    write_tensor_dir(os.path.join(out_dir, "sample_outputs"),
                     {ex.OUTPUT_NAME: expected[:sample_rows]})
    metadata = dict(metadata)
    metadata["onnx"] = {"file": "model.onnx", "opset": ex.OPSET, "io": ex.describe(proto),
                        "op_histogram": ex.op_histogram(proto),
                        "sha256": sha256(onnx_path)}
    metadata["files"] = {
        "schema": "schema.json", "val_tsv": "val.tsv", "val_inputs": "val_inputs/",
        "val_labels": "val_labels.pb", "sample_inputs": "sample_inputs/",
        "sample_outputs": "sample_outputs/", "val_rows": int(len(rows)),
        "sample_rows": int(min(sample_rows, len(rows)))}
    metadata["versions"] = {"torch": torch.__version__, "onnx": onnx.__version__}
    write_json(os.path.join(out_dir, "metadata.json"), metadata)
    return check


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
