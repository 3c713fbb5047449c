"""The precision table users ask for, in one run on the GPU machine (issue 6's report).

For the benchmark-shape DeepFM and DCN-v2 (python/clickrt_zoo defaults, random weights: speed does
not depend on training) it builds clickrt engines in every precision configuration and times them
against PyTorch eager FP32 on the same inputs; for the trained zoo fixtures of the same
architectures (models/<name>/, smaller widths) it builds the same configurations and measures AUC
on their held-out validation rows with `clickrt eval`. A configuration clickrt cannot build is
listed with the builder's own error message, not left out.

Rows: PyTorch FP32, clickrt fp32 / fp16 / fp16 + int8 embeddings / fp16 + int4 embeddings / int8 /
fp8. Columns: GPU time at batch 8, throughput at 4096 and 32768, GPU memory at 32768, AUC, AUC
retained (% of the FP32 engine's).

  LD_LIBRARY_PATH=.device/lib:/usr/local/cuda/lib64 \\
    python3 bench/quant_report.py --clickrt .device/bin/clickrt --out /tmp/q
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_vs_torch as g  # noqa: E402  (the peers and helpers of the CUDA benchmark)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> extra `clickrt build` flags (all cuda).
CONFIGS = {
    "clickrt fp32": ["--precision", "fp32"],
    "clickrt fp16": ["--precision", "fp16"],
    "clickrt fp16 + int8 emb": ["--precision", "fp16", "--embeddings", "int8"],
    "clickrt fp16 + int4 emb": ["--precision", "fp16", "--embeddings", "int4"],
    "clickrt int8": ["--precision", "int8"],  # + --calib, added per model
    "clickrt fp8": ["--precision", "fp8"],
}


def build(clickrt, onnx, engine, flags, batch, buckets, calib):
    cmd = [clickrt, "build", onnx, "-o", engine, "--backend", "cuda", "--batch", batch, "--buckets", buckets,
           *flags]
    if flags[flags.index("--precision") + 1] in ("int8", "fp8"):
        cmd += ["--calib", calib, "--calibrator", "percentile"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = [line for line in r.stderr.strip().splitlines() if line.startswith("error")]
        return (last[-1] if last else r.stderr.strip()[-300:])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="deepfm,dcnv2")
    ap.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    batches = [8, 4096, 32768]
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": []}
    print(f"device {report['device']}, torch {torch.__version__}", flush=True)
    for name in args.models.split(","):
        fixture = os.path.join(ROOT, "models", name)
        val = os.path.join(fixture, "val_inputs")
        # --- accuracy: the trained fixture in every configuration ---------------------------------
        auc = {}
        r = subprocess.run([args.clickrt, "eval", os.path.join(fixture, "model.onnx"), "--data", val, "--json"],
                           capture_output=True, text=True)
        auc["PyTorch fp32"] = json.loads(r.stdout.strip().splitlines()[-1])["model"]["auc"] if r.returncode == 0 else None
        errors = {}
        for cfg, flags in CONFIGS.items():
            eng = os.path.join(args.out, f"{name}.trained.{cfg.replace(' ', '_').replace('+', '')}.engine")
            err = build(args.clickrt, os.path.join(fixture, "model.onnx"), eng, flags, "1:512:4096", "8,512,4096", val)
            if err:
                errors[cfg] = err
                print(f"{name} {cfg}: not built: {err}", flush=True)
                continue
            r = subprocess.run([args.clickrt, "eval", eng, "--data", val, "--json"], capture_output=True, text=True)
            auc[cfg] = json.loads(r.stdout.strip().splitlines()[-1])["model"]["auc"] if r.returncode == 0 else None
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
        # --- speed: the benchmark shape ------------------------------------------------------------
        torch.manual_seed(0)
        model = g.MAKERS[name]().eval()
        onnx_path = os.path.join(args.out, f"{name}.onnx")
        ex = g.make_inputs(model, 4, 1)
        with torch.no_grad():
            torch.onnx.export(model, tuple(torch.from_numpy(ex[n]) for n in model.input_names), onnx_path,
                              input_names=list(model.input_names), output_names=["prob"],
                              dynamic_axes={**{n: {0: "batch"} for n in model.input_names}, "prob": {0: "batch"}},
                              opset_version=17, do_constant_folding=True, dynamo=False)
        calib_dir = os.path.join(args.out, f"calib_{name}")
        os.makedirs(calib_dir, exist_ok=True)
        for n, a in g.make_inputs(model, 2048, 7).items():
            g.write_pb(os.path.join(calib_dir, f"{n}.pb"), n, a)
        engines = {}
        for cfg, flags in CONFIGS.items():
            eng = os.path.join(args.out, f"{name}.{cfg.replace(' ', '_').replace('+', '')}.engine")
            err = build(args.clickrt, onnx_path, eng, flags, "1:512:32768", ",".join(map(str, batches)), calib_dir)
            if err:
                errors.setdefault(cfg, err)
            else:
                engines[cfg] = eng
        model = model.cuda()
        speed = {}
        for b in batches:
            inputs = g.make_inputs(model, b, 100 + b)
            in_dir = os.path.join(args.out, f"in_{name}_{b}")
            os.makedirs(in_dir, exist_ok=True)
            for n, a in inputs.items():
                g.write_pb(os.path.join(in_dir, f"{n}.pb"), n, a)
            iters = args.iters if b <= 4096 else max(30, args.iters // 4)
            peers = g.torch_peers(model, inputs, iters, [], {"rows": []})
            gms, _, mem, ref = peers["torch eager fp32"]
            speed[("PyTorch fp32", b)] = (gms, mem)
            for cfg, eng in engines.items():
                bench, out = g.run_clickrt(args.clickrt, eng, in_dir, os.path.join(args.out, f"out_{name}_{b}"),
                                           iters)
                speed[(cfg, b)] = (bench["gpu_compute_ms"]["p50"], bench["gpu_memory_mb"])
                print(f"{name} {b} {cfg}: {speed[(cfg, b)][0]:.4f} ms, max diff vs torch fp32 "
                      f"{float(np.abs(out - ref).max()):.2e}", flush=True)
        base_auc = auc.get("clickrt fp32")
        for cfg in ["PyTorch fp32", *CONFIGS]:
            row = {"model": name, "config": cfg, "error": errors.get(cfg), "auc": auc.get(cfg)}
            if (cfg, 8) in speed:
                row["gpu_ms_b8"] = speed[(cfg, 8)][0]
                row["msamples_s_4096"] = 4096 / speed[(cfg, 4096)][0] / 1e3
                row["msamples_s_32768"] = 32768 / speed[(cfg, 32768)][0] / 1e3
                row["gpu_mem_mb_32768"] = speed[(cfg, 32768)][1]
            if row["auc"] is not None and base_auc:
                row["auc_retained_pct"] = 100.0 * row["auc"] / base_auc
            report["rows"].append(row)
    with open(os.path.join(args.out, "quant_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print("\n| model | config | batch 8 (ms) | 4096 (M/s) | 32768 (M/s) | GPU MB | AUC | AUC retained |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in report["rows"]:
        if "gpu_ms_b8" not in r:
            print(f"| {r['model']} | {r['config']} | not built: {r['error']} | | | | | |")
            continue
        auc_s = f"{r['auc']:.5f}" if r["auc"] is not None else "-"
        ret = f"{r['auc_retained_pct']:.2f}%" if "auc_retained_pct" in r else "-"
        print(f"| {r['model']} | {r['config']} | {r['gpu_ms_b8']:.4f} | {r['msamples_s_4096']:.1f} | "
              f"{r['msamples_s_32768']:.1f} | {r['gpu_mem_mb_32768']:.0f} | {auc_s} | {ret} |")


if __name__ == "__main__":
    main()
