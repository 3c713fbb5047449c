"""clickrt's CUDA engines against PyTorch on one GPU, in one run: the benchmark-shape DeepFM and
DCN-v2 (python/clickrt_zoo defaults; random weights, seed 0), the same weights (clickrt builds the
ONNX exported from the very module PyTorch runs) and the same inputs.

Peers: PyTorch eager FP32 and FP16, the same with a CUDA graph, and torch.compile max-autotune
(--compile fp16 or fp32,fp16; minutes of compiling per batch size). clickrt: `clickrt build --backend cuda` (autotuned, timing cache) and
`clickrt bench --json` on the same input files; the max abs difference of the probabilities is
taken against PyTorch eager FP32.

GPU time = CUDA events around the forward (graph launch for CUDA graphs), median of --iters.
End to end = host wall time of H2D copy of the inputs (pinned) + forward + D2H copy + sync.

usage (on the GPU machine, from the repository root, after scripts/gpu_bundle.sh):
  LD_LIBRARY_PATH=.device/lib python3 bench/gpu_vs_torch.py --clickrt .device/bin/clickrt --out OUT
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from clickrt_zoo.models.dcnv2 import DCNv2, DCNv2Config  # noqa: E402
from clickrt_zoo.models.deepfm import DeepFM, DeepFMConfig  # noqa: E402

MAKERS = {"deepfm": lambda: DeepFM(DeepFMConfig()), "dcnv2": lambda: DCNv2(DCNv2Config())}


# ---- ONNX TensorProto files without the onnx package (dims=1, data_type=2, name=8, raw_data=9).
def _encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def write_pb(path, name, arr):
    arr = np.ascontiguousarray(arr)
    dtype = {np.float32: 1, np.int64: 7}[arr.dtype.type]
    msg = b"".join(b"\x08" + _encode_varint(d) for d in arr.shape)
    msg += b"\x10" + _encode_varint(dtype)
    nb = name.encode()
    msg += b"\x42" + _encode_varint(len(nb)) + nb
    raw = arr.tobytes()
    msg += b"\x4a" + _encode_varint(len(raw)) + raw
    with open(path, "wb") as f:
        f.write(msg)


def _varint(data, i):
    """(value, next index) of the varint at data[i]."""
    v = shift = 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def read_pb_float(path):
    """A float32 TensorProto file (raw_data or float_data) as a numpy array."""
    data = open(path, "rb").read()
    i, dims, raw, floats = 0, [], None, []
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(data, i)
            if field == 1:
                dims.append(v)
        elif wire == 2:
            n, i = _varint(data, i)
            chunk = data[i:i + n]
            i += n
            if field == 9:
                raw = chunk
            elif field == 4:
                floats.extend(struct.unpack(f"<{n // 4}f", chunk))
            elif field == 1:  # packed dims
                j = 0
                while j < len(chunk):
                    v, j = _varint(chunk, j)
                    dims.append(v)
        elif wire == 5:
            if field == 4:
                floats.append(struct.unpack("<f", data[i:i + 4])[0])
            i += 4
        elif wire == 1:
            i += 8
    arr = np.frombuffer(raw, dtype=np.float32) if raw is not None else np.array(floats, np.float32)
    return arr.reshape(dims)


# ---- timing helpers
def gpu_time_ms(fn, iters, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def e2e_ms(fn, host_inputs, dev_inputs, out_holder, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        for h, d in zip(host_inputs, dev_inputs):
            d.copy_(h, non_blocking=True)
        fn()
        out_holder[0].to("cpu", non_blocking=False)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def make_inputs(model, batch, seed):
    rng = np.random.default_rng(seed)
    sizes = np.array(model.cfg.field_sizes)
    sparse = (rng.random((batch, len(sizes))) * sizes).astype(np.int64)
    dense = rng.lognormal(1.0, 1.5, size=(batch, model.cfg.num_dense)).astype(np.float32)
    return {"dense": dense, "sparse": sparse}


def torch_peers(model32, inputs, iters, use_compile, results):
    """Every PyTorch configuration on these inputs: {config: (gpu_ms, e2e_ms, mem_mb, out)}."""
    out = {}
    names = list(model32.input_names)
    for prec in ("fp32", "fp16"):
        model = model32 if prec == "fp32" else model32_half(model32)
        host = [torch.from_numpy(inputs[n]).pin_memory() for n in names]
        dev = [h.to("cuda") for h in host]
        if prec == "fp16":
            dev = [d.half() if d.dtype == torch.float32 else d for d in dev]
            host = [h.half().pin_memory() if h.dtype == torch.float32 else h for h in host]
        holder = [None]

        def eager():
            with torch.no_grad():
                holder[0] = model(*dev)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        g = gpu_time_ms(eager, iters)
        weights = sum(t.numel() * t.element_size() for t in model.parameters())
        mem = (weights + torch.cuda.max_memory_allocated() - base) / 1e6  # weights + activations
        e = e2e_ms(eager, host, dev, holder, max(10, iters // 4))
        out[f"torch eager {prec}"] = (g, e, mem, holder[0].float().cpu().numpy())
        # CUDA graph of the same forward.
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                eager()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            holder[0] = model(*dev)
        g = gpu_time_ms(graph.replay, iters)
        e = e2e_ms(graph.replay, host, dev, holder, max(10, iters // 4))
        out[f"torch cudagraph {prec}"] = (g, e, mem, holder[0].float().cpu().numpy())
        del graph
        if prec in use_compile:
            try:
                compiled = torch.compile(model, mode="max-autotune", dynamic=False)

                def comp():
                    with torch.no_grad():
                        holder[0] = compiled(*dev)
                t0 = time.time()
                comp()
                torch.cuda.synchronize()
                results.setdefault("compile_seconds", []).append(time.time() - t0)
                g = gpu_time_ms(comp, iters)
                e = e2e_ms(comp, host, dev, holder, max(10, iters // 4))
                out[f"torch.compile max-autotune {prec}"] = (g, e, mem, holder[0].float().cpu().numpy())
            except Exception as ex:  # a peer that fails is reported, not fatal
                out[f"torch.compile max-autotune {prec}"] = (float("nan"), float("nan"), 0, None)
                print(f"torch.compile failed: {ex}", file=sys.stderr)
    return out


_half_cache = {}


def model32_half(model32):
    key = id(model32)
    if key not in _half_cache:
        import copy
        _half_cache[key] = copy.deepcopy(model32).half()
    return _half_cache[key]


def run_clickrt(clickrt, engine, in_dir, out_dir, iters):
    r = subprocess.run([clickrt, "bench", engine, "--inputs", in_dir, "--json", "--iterations", str(iters),
                        "--warmup", "20"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"clickrt bench failed: {r.stderr}")
    bench = json.loads(r.stdout.strip().splitlines()[-1])
    r = subprocess.run([clickrt, "run", "--engine", engine, "--inputs", in_dir, "--save-outputs", out_dir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"clickrt run failed: {r.stderr}")
    return bench, read_pb_float(os.path.join(out_dir, "prob.pb"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="deepfm,dcnv2")
    ap.add_argument("--batches", default="1,8,64,512,4096,32768")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--compile", default="", help="precisions to also run torch.compile max-autotune in, "
                    "e.g. fp16 or fp32,fp16 (slow: minutes per batch size)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": [], "builds": []}
    print(f"device {results['device']}, torch {torch.__version__}", flush=True)
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = MAKERS[name]().eval()
        onnx_path = os.path.join(args.out, f"{name}.onnx")
        ex = make_inputs(model, 4, 1)
        with torch.no_grad():
            torch.onnx.export(model, tuple(torch.from_numpy(ex[n]) for n in model.input_names), onnx_path,
                              input_names=list(model.input_names), output_names=["prob"],
                              dynamic_axes={**{n: {0: "batch"} for n in model.input_names}, "prob": {0: "batch"}},
                              opset_version=17, do_constant_folding=True, dynamo=False)
        model = model.cuda()
        engines = {}
        for prec in args.precisions.split(","):
            eng = os.path.join(args.out, f"{name}.{prec}.engine")
            cache = os.path.join(args.out, "timing.cache")
            for attempt in ("cold", "warm"):
                if attempt == "cold" and os.path.exists(cache) and prec == args.precisions.split(",")[0] \
                        and name == args.models.split(",")[0]:
                    os.remove(cache)
                t0 = time.time()
                r = subprocess.run([args.clickrt, "build", onnx_path, "-o", eng, "--backend", "cuda",
                                    "--precision", prec, "--batch", f"1:{min(512, max(batches))}:{max(batches)}",
                                    "--buckets", ",".join(str(b) for b in batches), "--timing-cache", cache],
                                   capture_output=True, text=True)
                secs = time.time() - t0
                if r.returncode != 0:
                    print(r.stderr, file=sys.stderr)
                    raise SystemExit(f"clickrt build {name} {prec} failed")
                results["builds"].append({"model": name, "precision": prec, "cache": attempt, "seconds": secs})
                print(f"build {name} {prec} ({attempt} cache): {secs:.1f} s", flush=True)
                if attempt == "cold":
                    print(r.stderr, flush=True)
            engines[prec] = eng
        for b in batches:
            inputs = make_inputs(model, b, 100 + b)
            in_dir = os.path.join(args.out, f"in_{name}_{b}")
            os.makedirs(in_dir, exist_ok=True)
            for n, a in inputs.items():
                write_pb(os.path.join(in_dir, f"{n}.pb"), n, a)
            iters = args.iters if b <= 4096 else max(30, args.iters // 4)
            peers = torch_peers(model, inputs, iters, [p for p in args.compile.split(",") if p], results)
            ref = peers["torch eager fp32"][3]
            for cfg, (g, e, mem, o) in peers.items():
                diff = float(np.abs(o - ref).max()) if o is not None else float("nan")
                results["rows"].append({"model": name, "batch": b, "config": cfg, "gpu_ms": g, "e2e_ms": e,
                                        "samples_per_s": b / (g / 1e3) if g == g else float("nan"),
                                        "mem_mb": mem, "max_diff": diff})
            for prec, eng in engines.items():
                bench, out = run_clickrt(args.clickrt, eng, in_dir, os.path.join(args.out, f"out_{name}_{b}_{prec}"),
                                         iters)
                g = bench["gpu_compute_ms"]["p50"]
                results["rows"].append({"model": name, "batch": b, "config": f"clickrt {prec}", "gpu_ms": g,
                                        "e2e_ms": bench["latency_ms"]["p50"], "samples_per_s": b / (g / 1e3),
                                        "mem_mb": bench["gpu_memory_mb"],
                                        "max_diff": float(np.abs(out - ref).max())})
            for row in results["rows"]:
                if row["model"] == name and row["batch"] == b:
                    print(f"{name:7s} {b:6d} {row['config']:34s} gpu {row['gpu_ms']:9.4f} ms  e2e "
                          f"{row['e2e_ms']:9.4f} ms  {row['samples_per_s']:14.0f}/s  mem {row['mem_mb']:8.1f} MB  "
                          f"diff {row['max_diff']:.2e}", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
