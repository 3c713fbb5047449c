import os

import numpy as np
import onnx
import pytest

from clickrt_zoo.check import check_against, missing_binary_reason, run_clickrt
from clickrt_zoo.export import (OUTPUT_NAME, SUPPORTED_OPS, describe, example_inputs, export_onnx,
                                op_histogram, torch_predict)
from conftest import MODEL_NAMES, small_model

NO_BINARY = missing_binary_reason()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for name in MODEL_NAMES:
        model = small_model(name)
        path = str(root / f"{name}.onnx")
        proto = export_onnx(model, path)
        out[name] = (model, path, proto)
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_op_histogram_within_supported(name, exported):
    _, _, proto = exported[name]
    hist = op_histogram(proto)
    assert set(hist) <= SUPPORTED_OPS, set(hist) - SUPPORTED_OPS
    assert proto.opset_import[0].version == 17


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_io_names_and_dynamic_batch(name, exported):
    model, _, proto = exported[name]
    io = describe(proto)
    expected = {"dense": ["float", ["batch", 13]], "sparse": ["int64", ["batch", 26]],
                OUTPUT_NAME: ["float", ["batch", 1]]}
    if name == "din":
        expected.update({"hist_items": ["int64", ["batch", 10]],
                         "hist_cats": ["int64", ["batch", 10]],
                         "target_item": ["int64", ["batch"]], "target_cat": ["int64", ["batch"]]})
    assert io == expected
    assert [i.name for i in proto.graph.input] == list(model.input_names)


def test_external_data(tmp_path):
    model = small_model("deepfm")
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path, external_data=True)
    # the small model's tables are under the 1 MiB threshold: the file stays self-contained,
    # and loading with external data works either way
    assert onnx.load(path).graph.node


@pytest.mark.skipif(NO_BINARY is not None, reason=str(NO_BINARY))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_clickrt_matches_pytorch(name, exported):
    model, path, _ = exported[name]
    for batch in (1, 7):
        inputs = example_inputs(model, batch, seed=batch)
        result = check_against(path, inputs, torch_predict(model, inputs), log=lambda s: None)
        assert result.passed, result.message
    # out-of-range ids go through the in-graph sanitising (Greater/Less/And/Where)
    inputs = example_inputs(model, 4, seed=11)
    inputs["sparse"][:, :4] = [[-1, 10**6, 3, -7]] * 4
    result = check_against(path, inputs, torch_predict(model, inputs), log=lambda s: None)
    assert result.passed, result.message


@pytest.mark.skipif(NO_BINARY is not None, reason=str(NO_BINARY))
def test_clickrt_output_file_names(exported):
    model, path, _ = exported["deepfm"]
    outputs = run_clickrt(path, example_inputs(model, 2))
    assert list(outputs) == [OUTPUT_NAME] and outputs[OUTPUT_NAME].dtype == np.float32


def test_missing_binary_is_reported(monkeypatch, tmp_path, exported):
    monkeypatch.setenv("CLICKRT_BIN", str(tmp_path / "no-such-clickrt"))
    model, path, _ = exported["deepfm"]
    inputs = example_inputs(model, 2)
    lines = []
    result = check_against(path, inputs, torch_predict(model, inputs), log=lines.append)
    assert not result.ran and not result.passed
    assert "not found" in lines[0] and "no-such-clickrt" in lines[0]


def test_benchmark_model_with_external_data(tmp_path):
    """The benchmark-shape writer (vocabularies capped at 20,000 here to stay quick: the real
    cap of 200,000 gives ~100 MB) puts the tables in model.onnx.data; clickrt must read them."""
    from clickrt_zoo.bench import write_benchmark_model
    from clickrt_zoo.tensor_io import read_tensor, read_tensor_dir
    out = str(tmp_path / "bench")
    path = write_benchmark_model(out, vocab_cap=20_000, log=lambda s: None)
    assert os.path.getsize(os.path.join(out, "model.onnx.data")) > 10_000_000
    assert os.path.getsize(path) < 3_000_000
    if NO_BINARY is not None:
        pytest.skip(NO_BINARY)
    inputs = read_tensor_dir(os.path.join(out, "sample_inputs"))
    expected = read_tensor(os.path.join(out, "sample_outputs", "prob.pb"))
    result = check_against(path, inputs, expected, log=lambda s: None)
    assert result.passed, result.message
