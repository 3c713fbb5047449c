"""The command line end to end on tiny data: generate -> train -> export (-> clickrt check)."""
import json
import os

import numpy as np
import onnx

from clickrt_zoo.__main__ import main
from clickrt_zoo.export import describe
from test_readers import AVAZU_HEADER, avazu_line

SMALL = '{"embed_dim": 4, "dnn": [8, 8]}'


def test_generate_train_export(tmp_path, capsys):
    data, out = str(tmp_path / "data"), str(tmp_path / "run")
    assert main(["generate", "--out", data, "--train-rows", "3000", "--val-rows", "500",
                 "--config", '{"vocab_cap": 50}']) == 0
    info = json.load(open(os.path.join(data, "generator.json")))
    assert 0.6 < info["splits"]["val"]["bayes_auc"] < 1.0
    assert main(["train", "--model", "deepfm", "--train", f"{data}/train.tsv",
                 "--val", f"{data}/val.tsv", "--out", out, "--epochs", "1",
                 "--config", SMALL, "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "rows/s" in text and "val AUC" in text and "Bayes AUC" in text
    assert main(["export", "--checkpoint", f"{out}/checkpoint.pt",
                 "--out", f"{out}/model.onnx"]) == 0
    text = capsys.readouterr().out
    assert "export check" in text          # passed, or SKIPPED naming the missing binary
    assert describe(onnx.load(f"{out}/model.onnx"))["prob"] == ["float", ["batch", 1]]


def test_train_on_avazu_without_dense(tmp_path):
    rng = np.random.default_rng(0)
    lines = [AVAZU_HEADER]
    for i in range(400):
        click = str(int(rng.random() < 0.3))
        lines.append(avazu_line(click, f"141021{rng.integers(0, 24):02d}", first=str(i)))
    for name in ("train.csv", "val.csv"):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "run")
    assert main(["train", "--model", "wide_deep", "--format", "avazu_csv", "--encoding", "hash",
                 "--hash-size", "50", "--train", str(tmp_path / "train.csv"),
                 "--val", str(tmp_path / "val.csv"), "--out", out, "--epochs", "1",
                 "--config", SMALL, "--threads", "1"]) == 0
    assert main(["export", "--checkpoint", f"{out}/checkpoint.pt",
                 "--out", f"{out}/model.onnx"]) == 0
    io = describe(onnx.load(f"{out}/model.onnx"))
    assert io["sparse"] == ["int64", ["batch", 23]] and "dense" not in io
    schema = json.load(open(f"{out}/schema.json"))
    assert schema["data_format"] == "avazu_csv"
    assert schema["inputs"][0]["fields"][0]["derive"] == "hour_of_day"
