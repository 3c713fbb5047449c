"""The benchmark-shape DeepFM: Criteo Kaggle layout (13 dense + 26 sparse fields), each field's
vocabulary = its Criteo Kaggle cardinality capped at 200,000 rows, embedding 16, DNN 400x3,
random weights. Generated on demand (not committed): the embedding table alone is
~1.48M rows x 16 floats (~95 MB), so the model is saved with ONNX external data."""
import os

import torch

from . import export as ex
from .data.criteo import empty_criteo
from .data.schema import build_schema, save_schema
from .models import build_model, model_config
from .published import BENCHMARK_EMBED_DIM, BENCHMARK_VOCAB_CAP, benchmark_field_sizes
from .tensor_io import write_json, write_tensor_dir


def write_benchmark_model(out_dir: str, seed: int = 0, sample_rows: int = 8,
                          vocab_cap: int = BENCHMARK_VOCAB_CAP, log=print) -> str:
    """Writes model.onnx (+ model.onnx.data), schema.json, metadata.json, sample_inputs/ and
    sample_outputs/ into out_dir. `vocab_cap` other than the default is for tests only."""
    sizes = benchmark_field_sizes(vocab_cap)
    torch.manual_seed(seed)
    model = build_model("deepfm", field_sizes=sizes, embed_dim=BENCHMARK_EMBED_DIM)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.onnx")
    proto = ex.export_onnx(model, path, external_data=True)
    schema = build_schema(empty_criteo(), encoding="hash",
                          hash_sizes={f"C{i + 1}": s for i, s in enumerate(sizes)})
    save_schema(schema, os.path.join(out_dir, "schema.json"))
    sample = ex.example_inputs(model, sample_rows, seed=seed)
    write_tensor_dir(os.path.join(out_dir, "sample_inputs"), sample)
    write_tensor_dir(os.path.join(out_dir, "sample_outputs"),
                     {ex.OUTPUT_NAME: ex.torch_predict(model, sample)})
    rows = int(sum(sizes))
    meta = {"model": "deepfm", "kind": "benchmark shape, random weights",
            "vocab_cap": vocab_cap, "embedding_rows": rows,
            "embedding_bytes": rows * BENCHMARK_EMBED_DIM * 4, "seed": seed,
            "config": model_config(model), "onnx": {"file": "model.onnx",
            "external_data": "model.onnx.data", "opset": ex.OPSET, "io": ex.describe(proto),
            "op_histogram": ex.op_histogram(proto)}}
    write_json(os.path.join(out_dir, "metadata.json"), meta)
    size = sum(os.path.getsize(os.path.join(out_dir, n)) for n in ("model.onnx", "model.onnx.data"))
    log(f"wrote {out_dir}: {rows:,} embedding rows x {BENCHMARK_EMBED_DIM}, "
        f"{size / 1e6:.1f} MB with external data")
    return path
