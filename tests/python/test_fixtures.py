"""The committed model folders (models/<name>/, written by python/make_models.py)."""
import json
import os

import numpy as np
import onnx
import pytest

from clickrt_zoo.check import check_against, missing_binary_reason
from clickrt_zoo.data.criteo import read_criteo
from clickrt_zoo.data.schema import encode, load_schema
from clickrt_zoo.export import SUPPORTED_OPS, op_histogram
from clickrt_zoo.tensor_io import read_tensor, read_tensor_dir
from conftest import MODEL_NAMES, REPO

NO_BINARY = missing_binary_reason()


def model_dir(name):
    path = os.path.join(REPO, "models", name)
    if not os.path.isfile(os.path.join(path, "model.onnx")):
        pytest.skip(f"{path}/model.onnx missing: run python/make_models.py")
    return path


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fixture_files_and_metrics(name):
    path = model_dir(name)
    for entry in ("schema.json", "metadata.json", "val.tsv", "val_labels.pb",
                  "val_inputs", "sample_inputs", "sample_outputs/prob.pb"):
        assert os.path.exists(os.path.join(path, entry)), entry
    assert os.path.getsize(os.path.join(path, "model.onnx")) <= 10 * 1024 * 1024
    meta = json.load(open(os.path.join(path, "metadata.json")))
    m = meta["metrics"]
    assert m["bayes_auc"] - m["val_auc"] <= 0.02, m
    proto = onnx.load(os.path.join(path, "model.onnx"))
    assert set(op_histogram(proto)) <= SUPPORTED_OPS
    inputs = read_tensor_dir(os.path.join(path, "sample_inputs"))
    assert list(inputs) == sorted(i.name for i in proto.graph.input)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_val_tsv_matches_val_inputs(name):
    """The schema turns val.tsv into exactly val_inputs/ (what the server must reproduce)."""
    path = model_dir(name)
    schema = load_schema(os.path.join(path, "schema.json"))
    raw = read_criteo(os.path.join(path, "val.tsv"),
                      behaviour=schema["data_format"] == "criteo_tsv_behaviour")
    assert raw.report.num_malformed == 0
    expected = read_tensor_dir(os.path.join(path, "val_inputs"))
    got = encode(schema, raw)
    assert sorted(got) == sorted(expected)
    for key in got:
        np.testing.assert_array_equal(got[key], expected[key])
    np.testing.assert_array_equal(raw.labels, read_tensor(os.path.join(path, "val_labels.pb")))


@pytest.mark.skipif(NO_BINARY is not None, reason=str(NO_BINARY))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fixture_clickrt_matches_pytorch(name):
    path = model_dir(name)
    inputs = read_tensor_dir(os.path.join(path, "sample_inputs"))
    expected = read_tensor(os.path.join(path, "sample_outputs", "prob.pb"))
    result = check_against(os.path.join(path, "model.onnx"), inputs, expected, log=lambda s: None)
    assert result.passed, result.message
