#!/usr/bin/env python3
"""End to end (issue 8's acceptance test): under `clickrt loadtest` (closed loop, 8 clients), the
real `clickrt serve` has a GPU fault injected (simulated: `--fault-injection` puts the CPU engine
behind itself where there is no GPU; `--backend cuda` uses a real cuda engine), loads version 2,
unloads version 1 while v1 is faulted, faults v2 too, then clears: the load test must count zero
failed requests (failing GPU calls are retried once on the CPU engine, the documented retry).

usage: swap_and_fault_e2e.py --clickrt BIN --source REPO_ROOT [--backend cpu|cuda]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_http import Server  # noqa: E402

TOKEN = "swap-and-fault"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    deepfm = os.path.join(args.source, "models", "deepfm")
    features = os.path.join(deepfm, "features.tsv")
    work = tempfile.mkdtemp(prefix="clickrt_swap_fault_")
    log = open(os.path.join(work, "server.log"), "w")
    server = lt = None
    fails = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            fails.append(what)

    try:
        for v in ("1", "2"):
            d = os.path.join(work, "repo", "deepfm", v)
            os.makedirs(d)
            for f in ("schema.json", "features.json", "model.onnx"):
                shutil.copy(os.path.join(deepfm, f), d)
            json.dump({"timeout_ms": 10000}, open(os.path.join(d, "config.json"), "w"))
            subprocess.run([args.clickrt, "build", os.path.join(deepfm, "model.onnx"), "-o",
                            os.path.join(d, "model.engine"), "--batch", "1:64:256", "--backend", args.backend],
                           check=True, capture_output=True)
        # v2 waits outside the repository until the admin API loads it.
        os.rename(os.path.join(work, "repo", "deepfm", "2"), os.path.join(work, "v2"))
        server = Server(args.clickrt, os.path.join(work, "repo"),
                        ["--features", features, "--fault-injection", "--admin-token", TOKEN,
                         "--gpu-probe-interval-ms", "100", "--gpu-deadline-ms", "1000"], log, token=TOKEN)

        def call(method, path, body=None):
            return server.request(method, path, body)

        lt = subprocess.Popen([args.clickrt, "loadtest", "--url", server.url, "--features",
                               features, "--mode", "closed", "--clients", "8", "--duration", "8",
                               "--candidates", "50", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        st, out = call("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "cuda_error"})
        check(st == 200, "inject cuda_error into v1 under load: %d %s" % (st, out))
        time.sleep(1.0)
        shutil.move(os.path.join(work, "v2"), os.path.join(work, "repo", "deepfm", "2"))
        st, out = call("POST", "/v2/repository/models/deepfm/load", {"version": "2"})
        check(st == 200, "load v2 while v1 is faulted: %d %s" % (st, out))
        time.sleep(1.0)
        st, out = call("POST", "/v2/repository/models/deepfm/unload", {"version": "1"})
        check(st == 200, "unload the faulted v1: %d %s" % (st, out))
        st, out = call("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "cuda_error"})
        check(st == 200, "inject cuda_error into v2: %d %s" % (st, out))
        time.sleep(1.5)
        st, out = call("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "clear"})
        check(st == 200, "clear: %d %s" % (st, out))
        out, err = lt.communicate(timeout=120)
        rep = json.loads(out.strip().splitlines()[-1])
        print("     loadtest:", json.dumps({k: rep[k] for k in ("requests", "ok", "errors", "errors_by_kind", "qps")}))
        check(rep["requests"] >= 1000, "thousands of requests under load (%d)" % rep["requests"])
        check(rep["errors"] == 0, "zero failed requests across the fault, the load and the unload")
        st, out = call("GET", "/v2/repository/index")
        served = sorted(e["version"] for e in out if e.get("name") == "deepfm" and e.get("state") == "READY")
        check(served == ["2"], "deepfm serves v2 only afterwards: %s" % served)
    finally:
        if lt and lt.poll() is None:
            lt.terminate()
            lt.wait(timeout=30)
        if server:
            server.stop()
        log.close()
        if fails:
            print(open(os.path.join(work, "server.log")).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
