"""The feature schema: how raw fields become the model's ONNX inputs.

Written as JSON next to every exported model; the C++ server reads it to assemble features.
The format is specified in python/README.md ("Schema"). In short:

  {"schema_version": 1, "data_format": ..., "label": {...},
   "inputs": [{"name", "dtype", "shape", "fields": [field, ...]}, ...],
   "outputs": [{"name": "prob", ...}]}

Field kinds: "dense" (float, default for missing, transform applied by the model),
"categorical" (token -> id by its encoding: vocab / hash / identity, see encoding.py) and
"sequence" (a comma-separated id list -> fixed length, padded with 0).
"""
import json
from typing import Dict, Optional

import numpy as np

from .encoding import build_vocab, hash_encode, identity_encode, vocab_encode
from .raw import RawData

SCHEMA_VERSION = 1
DENSE_TRANSFORM = "log1p_relu"   # log(1 + max(x, 0)), computed inside the model


def build_schema(raw: RawData, encoding: str = "vocab", min_count: int = 5,
                 hash_size: int = 100_000, hash_sizes: Optional[Dict[str, int]] = None,
                 num_items: Optional[int] = None, num_cats: Optional[int] = None,
                 hist_len: int = 50) -> dict:
    """Schema for `raw` (normally the training split).

    encoding "vocab": each categorical field keeps the tokens seen >= min_count times.
    encoding "hash": each field hashes into hash_sizes.get(name, hash_size) ids.
    num_items / num_cats (behaviour data): id space of the identity-encoded item and category
    ids; by default one more than the largest id in `raw`.
    """
    dense_fields = []
    for i, name in enumerate(raw.dense_names):
        dense_fields.append({"name": name, "kind": "dense", "column": raw.columns[name],
                             "default": 0.0, "transform": DENSE_TRANSFORM,
                             "transform_in_model": True})
    cat_fields = []
    for i, name in enumerate(raw.categorical_names):
        spec = {"name": name, "kind": "categorical", "column": raw.columns[name]}
        if name in raw.derived:
            spec["derive"] = raw.derived[name]
        if encoding == "vocab":
            tokens, _ = build_vocab(raw.categorical[:, i], min_count)
            spec.update({"encoding": "vocab", "size": len(tokens) + 1, "min_count": min_count,
                         "tokens": tokens})
        elif encoding == "hash":
            size = (hash_sizes or {}).get(name, hash_size)
            spec.update({"encoding": "hash", "hash": "fnv1a_64", "size": int(size)})
        else:
            raise ValueError(f"unknown encoding {encoding!r} (vocab or hash)")
        cat_fields.append(spec)
    inputs = []
    if dense_fields:
        inputs.append(_input("dense", "float32", len(dense_fields), dense_fields))
    inputs.append(_input("sparse", "int64", len(cat_fields), cat_fields))
    if raw.behaviour is not None:
        beh = raw.behaviour
        if num_items is None:
            num_items = 1 + int(max(beh["target_item"].max(initial=0),
                                    beh["hist_items"].max(initial=0)))
        if num_cats is None:
            num_cats = 1 + int(max(beh["target_cat"].max(initial=0),
                                   beh["hist_cats"].max(initial=0)))
        for name, size in (("hist_items", num_items), ("hist_cats", num_cats)):
            inputs.append(_input(name, "int64", hist_len, [{
                "name": name, "kind": "sequence", "column": raw.columns[name], "size": size,
                "encoding": "identity", "length": hist_len, "separator": ",",
                "padding_id": 0, "order": "most_recent_first"}]))
        for name, size in (("target_item", num_items), ("target_cat", num_cats)):
            spec = _input(name, "int64", None, [{
                "name": name, "kind": "categorical", "column": raw.columns[name], "size": size,
                "encoding": "identity"}])
            inputs.append(spec)
    return {
        "schema_version": SCHEMA_VERSION,
        "data_format": raw.data_format,
        "label": {"name": "label", "column": raw.columns.get("label", 0)},
        "inputs": inputs,
        "outputs": [{"name": "prob", "dtype": "float32", "shape": ["batch", 1],
                     "meaning": "click probability, sigmoid applied"}],
    }


def _input(name: str, dtype: str, width: Optional[int], fields: list) -> dict:
    shape = ["batch"] if width is None else ["batch", width]
    return {"name": name, "dtype": dtype, "shape": shape, "fields": fields}


def encode(schema: dict, raw: RawData) -> Dict[str, np.ndarray]:
    """Model inputs (name -> array) for the rows of `raw`, following `schema`."""
    out = {}
    cat_index = {name: i for i, name in enumerate(raw.categorical_names)}
    dense_index = {name: i for i, name in enumerate(raw.dense_names)}
    for spec in schema["inputs"]:
        name = spec["name"]
        if name == "dense":
            cols = [dense_index[f["name"]] for f in spec["fields"]]
            dense = raw.dense[:, cols].copy()
            defaults = np.array([f["default"] for f in spec["fields"]], dtype=np.float32)
            missing = np.isnan(dense)
            dense[missing] = np.broadcast_to(defaults, dense.shape)[missing]
            out[name] = dense.astype(np.float32)
        elif name == "sparse":
            cols = [encode_field(f, raw.categorical[:, cat_index[f["name"]]])
                    for f in spec["fields"]]
            out[name] = np.stack(cols, axis=1).astype(np.int64)
        else:
            field = spec["fields"][0]
            out[name] = identity_encode(raw.behaviour[name], field["size"])
    return out


def encode_field(field: dict, tokens: np.ndarray) -> np.ndarray:
    kind = field["encoding"]
    if kind == "vocab":
        return vocab_encode(tokens, field["tokens"])
    if kind == "hash":
        return hash_encode(tokens, field["size"])
    raise ValueError(f"field {field['name']}: unknown encoding {kind!r}")


def input_sizes(schema: dict) -> dict:
    """What the model configs need: num_dense, field_sizes, and for behaviour data
    num_items, num_cats, hist_len."""
    by_name = {spec["name"]: spec for spec in schema["inputs"]}
    sizes = {"num_dense": len(by_name["dense"]["fields"]) if "dense" in by_name else 0,
             "field_sizes": tuple(f["size"] for f in by_name["sparse"]["fields"])}
    if "hist_items" in by_name:
        sizes["num_items"] = by_name["hist_items"]["fields"][0]["size"]
        sizes["num_cats"] = by_name["hist_cats"]["fields"][0]["size"]
        sizes["hist_len"] = by_name["hist_items"]["fields"][0]["length"]
    return sizes


def save_schema(schema: dict, path: str) -> None:
    """Writes the schema as JSON with one field per line (vocabularies stay on their field's
    line), so diffs of committed schemas stay readable."""
    lines = ["{"]
    top = list(schema.items())
    for i, (key, value) in enumerate(top):
        end = "," if i + 1 < len(top) else ""
        if key == "inputs":
            lines.append(' "inputs": [')
            for j, spec in enumerate(value):
                head = {k: v for k, v in spec.items() if k != "fields"}
                lines.append("  " + json.dumps(head)[:-1] + ', "fields": [')
                for k, fld in enumerate(spec["fields"]):
                    comma = "," if k + 1 < len(spec["fields"]) else ""
                    lines.append("   " + json.dumps(fld) + comma)
                lines.append("  ]}" + ("," if j + 1 < len(value) else ""))
            lines.append(" ]" + end)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def load_schema(path: str) -> dict:
    with open(path) as f:
        schema = json.load(f)
    if schema.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {schema.get('schema_version')}, "
                         f"this code reads {SCHEMA_VERSION}")
    return schema
