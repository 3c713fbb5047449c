"""The release pipeline: train -> export ONNX -> build -> accuracy gate -> load-test gate ->
canary on a running server -> promote. Every gate prints a report; the first gate that fails
stops the pipeline with its reason and a non-zero exit code (2 accuracy, 3 load test, 4 canary
rolled back, 1 any other error).

usage (from the repository root, Debian's python3 with torch):
  PYTHONPATH=python /usr/bin/python3 python/pipeline.py --repo REPO --model deepfm --work DIR \\
      [--data DIR | --generate ROWS | --onnx MODEL.onnx --schema schema.json --val val.tsv] \\
      [--epochs 1] [--config JSON] [--clickrt build/bin/clickrt] \\
      [--precision int8 (--calib-log LOG [--calib-hours 24] [--edge-cases FILE] | --calib-data DATA)] \\
      [--max-auc-drop 0.001] [--min-qps 200] [--max-p99-ms 50] \\
      [--server http://127.0.0.1:8000 --admin-token TOKEN] [--canary-share 0.2] [--canary-window-s 10]

--onnx skips data, training and export: the release rebuilds an existing model (e.g. new INT8
scales from today's traffic). --precision int8 calibrates the build: --calib-log takes the running
server's sampled request log (clickrt serve --request-log DIR): its records of the last
--calib-hours hours that were encoded with the candidate's schema (the versions whose schema.json
equals it; a record of another version holds other ids) plus --edge-cases (hand-picked rows, JSONL
or .tsv: new ads, cold-start users), so the INT8 scales follow today's traffic.

REPO/<model>/ holds the serving versions (the highest serves); the candidate is compared with it
on the same validation rows (each version encodes them with its own schema.json), load-tested
alone on a temporary server, then copied in as the next version and put on canary through the
running server's admin API (without --server the candidate is left in REPO, not loaded).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from clickrt_zoo.data.schema import encode, load_schema
from clickrt_zoo.metrics import auc
from clickrt_zoo.tensor_io import read_tensor, write_tensor_dir
from clickrt_zoo.workflow import read_data

FORMATS = {"deepfm": "criteo_tsv", "dcnv2": "criteo_tsv", "wide_deep": "criteo_tsv",
           "din": "criteo_tsv_behaviour"}


class GateFailed(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def step(n, total, text):
    print(f"[{n}/{total}] {text}", flush=True)


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def zoo(args, *cmd):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    return run([sys.executable, "-m", "clickrt_zoo", *cmd], env=env)


def versions(repo, model):
    d = os.path.join(repo, model)
    if not os.path.isdir(d):
        return []
    return sorted((int(v) for v in os.listdir(d) if v.isdigit()), reverse=True)


def model_file(vdir):
    for name in ("model.engine", "model.onnx"):
        if os.path.exists(os.path.join(vdir, name)):
            return os.path.join(vdir, name)
    raise RuntimeError(f"{vdir}: holds neither model.engine nor model.onnx")


def score_auc(clickrt, vdir, val_raw, labels, work):
    """AUC of the version in `vdir` on the validation rows, encoded with its own schema."""
    schema = load_schema(os.path.join(vdir, "schema.json"))
    inputs = encode(schema, val_raw)
    path = model_file(vdir)
    flag = "--engine" if path.endswith(".engine") else "--model"
    rows = len(labels)
    chunk = rows
    if flag == "--engine":  # an engine takes batches up to its profile's max
        meta = json.loads(run([clickrt, "inspect", path, "--compact"]).stdout)["meta"]
        chunk = int(meta["profile"]["max"])
    probs = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for start in range(0, rows, chunk):
            in_dir, out_dir = os.path.join(tmp, f"in{start}"), os.path.join(tmp, f"out{start}")
            write_tensor_dir(in_dir, {k: np.ascontiguousarray(v[start:start + chunk]) for k, v in inputs.items()})
            run([clickrt, "run", flag, path, "--inputs", in_dir, "--save-outputs", out_dir, "--max-print", "0"])
            probs.append(read_tensor(os.path.join(out_dir, "prob.pb")).reshape(-1))
    return auc(labels, np.concatenate(probs))


def calibration_source(args, cand):
    """`clickrt build` flags naming the calibration set. From the request log: the records of the
    versions whose schema equals the candidate's, written to one JSONL file (clickrt keeps those of
    the last --calib-hours), plus the edge cases."""
    if args.calib_data:
        return ["--calib", args.calib_data]
    with open(os.path.join(cand, "schema.json")) as f:
        want = json.load(f)["inputs"]
    log = args.calib_log
    if os.path.isdir(log):
        log = os.path.join(log, "requests.log")
    files = sorted((p for p in os.listdir(os.path.dirname(log)) if p.startswith(os.path.basename(log))),
                   key=lambda p: -int(p.rsplit(".", 1)[1]) if p[-1].isdigit() else 0)  # oldest first
    same = {}  # (model, version) -> whether that version's schema equals the candidate's

    def matches(model, version):
        if (model, version) not in same:
            path = os.path.join(args.repo, model, str(version), "schema.json")
            ok = False
            if os.path.exists(path):
                with open(path) as f:
                    ok = json.load(f)["inputs"] == want
            same[(model, version)] = ok
        return same[(model, version)]

    lines, other = [], {}
    for name in files:
        with open(os.path.join(os.path.dirname(log), name)) as src:
            for line in src:
                rec = json.loads(line)
                if rec.get("model") == args.model and matches(rec["model"], rec.get("version")):
                    lines.append(line)
                else:
                    key = f"{rec.get('model')} v{rec.get('version')}"
                    other[key] = other.get(key, 0) + 1
    kept = len(lines)
    if kept > args.calib_rows:  # an even sample, in time order
        lines = [lines[i * kept // args.calib_rows] for i in range(args.calib_rows)]
    out = os.path.join(args.work, "calibration_log.jsonl")
    with open(out, "w") as dst:
        dst.writelines(lines)
    skipped = ", ".join(f"{n} of {k}" for k, n in sorted(other.items())) or "none"
    print(f"      calibration: {kept} request-log records encoded with the candidate's schema "
          f"(skipped: {skipped}), {len(lines)} sampled; the last {args.calib_hours:g} h kept by clickrt"
          + (f"; edge cases {args.edge_cases}" if args.edge_cases else ""))
    if kept == 0:
        raise RuntimeError(f"{args.calib_log}: no request-log record of '{args.model}' was encoded with the "
                           "candidate's schema (a version with the same schema.json must have served); "
                           "calibrate with --calib-data instead")
    flags = ["--calib", out, "--calib-hours", str(args.calib_hours)]
    if args.edge_cases:
        flags += ["--edge-cases", args.edge_cases]
    return flags


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if urllib.request.urlopen(url + "/v2/health/ready", timeout=1).status == 200:
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not become ready in {seconds} s")


def admin(url, token, method, path, body=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read().decode()[:500]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--model", required=True, choices=sorted(FORMATS))
    ap.add_argument("--work", required=True)
    ap.add_argument("--clickrt", default=os.path.join(ROOT, "build", "bin", "clickrt"))
    ap.add_argument("--data", help="folder with train.tsv and val.tsv (default: --generate)")
    ap.add_argument("--generate", type=int, default=40000, help="synthetic training rows when no --data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--config", default="", help="JSON overrides of the model config")
    ap.add_argument("--batch", default="1:64:512", help="engine batch profile")
    ap.add_argument("--max-auc-drop", type=float, default=0.001)
    ap.add_argument("--val-rows", type=int, default=10000)
    ap.add_argument("--min-qps", type=float, default=100.0, help="load-test gate: infer requests/s")
    ap.add_argument("--max-p99-ms", type=float, default=100.0)
    ap.add_argument("--loadtest-seconds", type=float, default=5.0)
    ap.add_argument("--server", help="running clickrt serve (its admin API) for the canary")
    ap.add_argument("--admin-token", default=os.environ.get("CLICKRT_ADMIN_TOKEN", ""))
    ap.add_argument("--canary-share", type=float, default=0.2)
    ap.add_argument("--canary-window-s", type=float, default=10.0)
    ap.add_argument("--canary-timeout-s", type=float, default=300.0)
    ap.add_argument("--onnx", help="an exported model to release (skips data, training, export)")
    ap.add_argument("--schema", help="with --onnx: its schema.json")
    ap.add_argument("--val", help="validation rows (.tsv; default DATA/val.tsv)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    ap.add_argument("--calib-log", help="int8: the server's request log (folder or requests.log)")
    ap.add_argument("--calib-hours", type=float, default=24.0, help="int8: the last H hours of the log")
    ap.add_argument("--edge-cases", help="int8: rows added to the calibration set (JSONL or .tsv)")
    ap.add_argument("--calib-data", help="int8: calibration data instead of the log (tensors / .tsv)")
    ap.add_argument("--calibrator", default="percentile")
    ap.add_argument("--calib-rows", type=int, default=20000,
                    help="int8: at most this many log records, sampled evenly (the edge cases always)")
    args = ap.parse_args()
    if args.onnx and not (args.schema and args.val):
        ap.error("--onnx needs --schema and --val")
    if args.precision == "int8" and not (args.calib_log or args.calib_data):
        ap.error("--precision int8 needs --calib-log or --calib-data")
    os.makedirs(args.work, exist_ok=True)
    total = 7
    clickrt = os.path.abspath(args.clickrt)
    try:
        # 1. data
        data = args.data
        cand = os.path.join(args.work, "candidate")
        if args.onnx:
            for n in (1, 2, 3):
                step(n, total, f"{('data', 'train', 'export')[n - 1]}: skipped (--onnx {args.onnx})")
            os.makedirs(cand, exist_ok=True)
            shutil.copy(args.onnx, os.path.join(cand, "model.onnx"))
            shutil.copy(args.schema, os.path.join(cand, "schema.json"))
        elif not data:
            data = os.path.join(args.work, "data")
            step(1, total, f"data: {args.generate} synthetic training rows into {data}")
            gen = ["generate", "--out", data, "--train-rows", str(args.generate),
                   "--val-rows", str(args.val_rows), "--seed", str(args.seed)]
            if FORMATS[args.model] == "criteo_tsv_behaviour":
                gen.append("--behaviour")
            print(zoo(args, *gen).stdout.strip().splitlines()[-1])
        else:
            step(1, total, f"data: {data}")
        if not args.onnx:
            train_tsv, val_tsv = os.path.join(data, "train.tsv"), os.path.join(data, "val.tsv")
            # 2. train
            out = os.path.join(args.work, "train")
            step(2, total, f"train {args.model}, {args.epochs} epoch(s)")
            cmd = ["train", "--model", args.model, "--train", train_tsv, "--val", val_tsv, "--out", out,
                   "--format", FORMATS[args.model], "--epochs", str(args.epochs), "--seed", str(args.seed)]
            if args.config:
                cmd += ["--config", args.config]
            print(zoo(args, *cmd).stdout.strip().splitlines()[-1])
            # 3. export
            os.makedirs(cand, exist_ok=True)
            step(3, total, "export ONNX (opset 17) and check it against PyTorch")
            zoo(args, "export", "--checkpoint", os.path.join(out, "checkpoint.pt"),
                "--out", os.path.join(cand, "model.onnx"))
            shutil.copy(os.path.join(out, "schema.json"), os.path.join(cand, "schema.json"))
        val_tsv = args.val or os.path.join(data, "val.tsv")
        # 4. build
        step(4, total, f"clickrt build --batch {args.batch} --precision {args.precision}")
        cmd = [clickrt, "build", os.path.join(cand, "model.onnx"), "-o", os.path.join(cand, "model.engine"),
               "--batch", args.batch]
        if args.precision == "int8":
            cmd += ["--precision", "int8", "--calibrator", args.calibrator,
                    "--schema", os.path.join(cand, "schema.json")] + calibration_source(args, cand)
        run(cmd)
        meta = json.loads(run([clickrt, "inspect", os.path.join(cand, "model.engine"), "--compact"]).stdout)["meta"]
        cal = meta.get("extra", {}).get("precision_assignment", {}).get("calibration")
        print(f"      engine: precision {meta['precision']}" +
              (f", calibrated on {cal['rows']} rows of {cal['data']} ({cal['calibrator']})" if cal else ""))
        if args.precision == "int8":
            layers = meta["extra"]["precision_assignment"]
            print(f"      int8 layers {len(layers['int8_layers'])}, fp32 layers {len(layers['float_layers'])}")
        os.remove(os.path.join(cand, "model.onnx"))  # the version serves its engine
        # 5. accuracy gate
        step(5, total, f"accuracy gate: AUC on {args.val_rows} validation rows vs the serving version")
        val_raw = read_data(val_tsv, FORMATS[args.model], max_rows=args.val_rows, log=lambda s: None)
        labels = np.asarray(val_raw.labels).reshape(-1)
        new_auc = score_auc(clickrt, cand, val_raw, labels, args.work)
        vs = versions(args.repo, args.model)
        serving_v = vs[0] if vs else None
        if args.server and vs:  # the version the running server answers with, not just the newest folder
            index = admin(args.server, args.admin_token, "GET", "/v2/repository/index")
            defaults = [int(e["version"]) for e in index if e.get("name") == args.model and e.get("default")]
            serving_v = defaults[0] if defaults else serving_v
        if serving_v is not None:
            serving = os.path.join(args.repo, args.model, str(serving_v))
            old_auc = score_auc(clickrt, serving, val_raw, labels, args.work)
            drop = old_auc - new_auc
            print(f"      candidate AUC {new_auc:.5f}, serving v{serving_v} AUC {old_auc:.5f}, drop {drop:+.5f} "
                  f"(budget {args.max_auc_drop})")
            if drop > args.max_auc_drop:
                raise GateFailed(2, f"accuracy gate: AUC drops by {drop:.5f} > {args.max_auc_drop}")
        else:
            print(f"      candidate AUC {new_auc:.5f}; no serving version to compare with")
        # 6. load-test gate: the candidate alone on a temporary server
        step(6, total, f"load-test gate: {args.loadtest_seconds:.0f} s of infer requests on a temporary server")
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            vdir = os.path.join(tmp, args.model, "1")
            shutil.copytree(cand, vdir)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            srv = subprocess.Popen([clickrt, "serve", "--repo", tmp, "--http-port", str(port), "--grpc-port", "-1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_ready(url)
                lt = run([clickrt, "loadtest", "--url", url, "--endpoint", "infer", "--model", args.model,
                          "--mode", "closed", "--clients", "4", "--duration", str(args.loadtest_seconds),
                          "--candidates", "100", "--json"])
            finally:
                srv.send_signal(signal.SIGTERM)
                srv.wait(timeout=30)
        rep = json.loads(lt.stdout.strip().splitlines()[-1])
        qps, p99 = rep.get("qps", 0.0), rep.get("latency_ms", {}).get("p99", 1e9)
        errors = rep.get("errors", 0)
        print(f"      {qps:.0f} req/s, p99 {p99:.2f} ms, errors {errors} (gate: >= {args.min_qps} req/s, "
              f"p99 <= {args.max_p99_ms} ms, no errors)")
        if qps < args.min_qps or p99 > args.max_p99_ms or errors:
            raise GateFailed(3, f"load-test gate: {qps:.0f} req/s, p99 {p99:.2f} ms, {errors} errors")
        # 7. canary on the running server, then promote
        nxt = (vs[0] if vs else 0) + 1
        dest = os.path.join(args.repo, args.model, str(nxt))
        shutil.copytree(cand, dest)
        if vs:
            for extra in ("features.json", "config.json"):
                src = os.path.join(args.repo, args.model, str(vs[0]), extra)
                if os.path.exists(src):
                    shutil.copy(src, os.path.join(dest, extra))
        if not args.server:
            step(7, total, f"canary: no --server; the candidate is {dest} (not loaded)")
            return 0
        step(7, total, f"canary on {args.server}: version {nxt}, share {args.canary_share}, "
                       f"window {args.canary_window_s:.0f} s")
        admin(args.server, args.admin_token, "POST", f"/v2/repository/models/{args.model}/load",
              {"version": str(nxt)})
        admin(args.server, args.admin_token, "POST", f"/v2/repository/models/{args.model}/canary",
              {"version": str(nxt), "share": args.canary_share, "window_s": args.canary_window_s})
        end = time.time() + args.canary_timeout_s
        while time.time() < end:
            st = admin(args.server, args.admin_token, "GET", f"/v2/repository/models/{args.model}/canary")
            # Decided: {"running": false, "last_decision": {...}} (or the decision itself).
            last = st.get("last_decision", st)
            decision = last.get("decision")
            if not st.get("running", True) and decision in ("promote", "rollback"):
                print("      " + json.dumps({k: last.get(k) for k in ("decision", "reason", "error_rate_delta",
                                                                       "p99_ratio", "ctr_drift", "psi")}))
                if decision != "promote":
                    shutil.rmtree(dest, ignore_errors=True)  # unloaded by the server; not to be reloaded
                    raise GateFailed(4, f"canary: version {nxt} was rolled back: {last.get('reason', '')}")
                print(f"      version {nxt} promoted")
                return 0
            time.sleep(1.0)
        raise GateFailed(4, f"canary: no decision within {args.canary_timeout_s:.0f} s")
    except GateFailed as g:
        print(f"pipeline stopped: {g}", file=sys.stderr)
        return g.code
    except RuntimeError as e:
        print(f"pipeline error: {e}", file=sys.stderr)
        return 1


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    sys.exit(main())
