"""Writes the benchmark-shape DeepFM and DCN-v2 (Criteo layout: 13 dense + 26 sparse fields,
vocabularies = Criteo Kaggle cardinalities capped at 200,000, embedding 16; random weights) as
ONNX with external data. Run with Debian's /usr/bin/python3 (it has torch).

usage: /usr/bin/python3 bench/make_bench_models.py OUT_DIR [deepfm,dcnv2]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import torch  # noqa: E402

from clickrt_zoo import export  # noqa: E402
from clickrt_zoo.models.dcnv2 import DCNv2, DCNv2Config  # noqa: E402
from clickrt_zoo.models.deepfm import DeepFM, DeepFMConfig  # noqa: E402


def main():
    out = sys.argv[1]
    names = (sys.argv[2] if len(sys.argv) > 2 else "deepfm,dcnv2").split(",")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    makers = {"deepfm": lambda: DeepFM(DeepFMConfig()), "dcnv2": lambda: DCNv2(DCNv2Config())}
    for name in names:
        path = os.path.join(out, name + ".onnx")
        if os.path.exists(path):
            print(f"{path}: exists")
            continue
        model = makers[name]().eval()
        export.export_onnx(model, path, external_data=True)
        print(f"{path}: written")


if __name__ == "__main__":
    main()
