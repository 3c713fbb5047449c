#!/usr/bin/env python3
"""End to end: GPU failure under load. The real `clickrt serve --fault-injection` (its CPU engine
stands in for the GPU primary, so this runs without a GPU) under `clickrt loadtest` (closed loop,
8 clients, 6 s); a CUDA error is injected mid-run, then cleared. The load test must see zero
errors, /metrics and /v2/health/ready must show the version degraded and then recovered. Then a
hang (answered from the CPU engine after the deadline), 404 for the fault route without the
flag, and the sampled request log."""
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

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--source", required=True)
    # cuda (on a GPU machine): model.engine is a real cuda engine, its CPU fallback is built from
    # model.onnx; default cpu: --fault-injection puts the CPU engine behind itself.
    ap.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    deepfm = os.path.join(args.source, "models", "deepfm")
    features = os.path.join(deepfm, "features.tsv")
    work = tempfile.mkdtemp(prefix="clickrt_fallback_e2e_")
    log = open(os.path.join(work, "server.log"), "w")
    servers = []
    try:
        d = os.path.join(work, "repo", "deepfm", "1")
        os.makedirs(d)
        for f in ("schema.json", "features.json", "model.onnx"):
            shutil.copy(os.path.join(deepfm, f), d)
        # Generous deadlines: CI machines are shared, and a slow answer is not what is tested.
        json.dump({"timeout_ms": 10000}, open(os.path.join(d, "config.json"), "w"))
        subprocess.run([args.clickrt, "build", os.path.join(deepfm, "model.onnx"), "-o",
                        os.path.join(d, "model.engine"), "--batch", "1:64:256",
                        "--backend", args.backend],
                       check=True, capture_output=True)
        reqlog = os.path.join(work, "reqlog")
        srv = Server(args.clickrt, os.path.join(work, "repo"),
                     ["--features", features, "--fault-injection", "--gpu-probe-interval-ms", "100",
                      "--gpu-deadline-ms", "1000", "--request-log", reqlog,
                      "--request-log-rate", "0.01", "--request-log-max-mb", "1"], log)
        servers.append(srv)
        labels = {"model": "deepfm", "version": "1"}
        check(srv.request("GET", "/v2/health/ready") == (200, {"ready": True}), "ready, not degraded")
        check(srv.metric("clickrt_backend_degraded", **labels) == 0, "metrics: degraded 0 at start")
        check(srv.metric("clickrt_backend_in_use", backend=args.backend, **labels) == 1,
              "metrics: %s in use at start" % args.backend)
        st, out = srv.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "meteor"})
        check(st == 400 and "unknown fault kind" in out.get("error", ""), "bad fault kind -> 400")
        st, out = srv.request("POST", "/v2/debug/fault", {"model": "nope", "kind": "clear"})
        check(st == 404, "fault for an unknown model -> 404")

        # Load, with a CUDA error from 1.5 s to 3.5 s.
        lt = subprocess.Popen([args.clickrt, "loadtest", "--url", srv.url, "--model", "deepfm",
                               "--features", features, "--mode", "closed", "--clients", "8",
                               "--duration", "6", "--candidates", "100", "--timeout-ms", "10000",
                               "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        rank_ok = dict(labels, endpoint="rank", code="200")
        before = srv.metric("clickrt_requests_total", **rank_ok) or 0
        st, out = srv.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "cuda_error"})
        check(st == 200 and out == {"injected": ["deepfm/1"]}, "inject cuda_error (%d %s)" % (st, out))
        seen_degraded_metric = seen_degraded_ready = seen_in_use_cpu = False
        t_end = time.time() + 2.0
        while time.time() < t_end:
            if srv.metric("clickrt_backend_degraded", **labels) == 1:
                seen_degraded_metric = True
            st, ready = srv.request("GET", "/v2/health/ready")
            if st == 200 and ready.get("ready") and ready.get("degraded") == ["deepfm/1"]:
                seen_degraded_ready = True
            if srv.metric("clickrt_backend_in_use", backend="cpu", **labels) == 1:
                seen_in_use_cpu = True
            time.sleep(0.1)
        check(seen_degraded_metric, "metrics: clickrt_backend_degraded 1 while faulted")
        check(seen_in_use_cpu, "metrics: clickrt_backend_in_use{backend=cpu} 1 while faulted")
        check(seen_degraded_ready, "ready: 200 {ready: true, degraded: [deepfm/1]} while faulted")
        st, out = srv.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "clear"})
        check(st == 200, "clear")
        during = (srv.metric("clickrt_requests_total", **rank_ok) or 0) - before
        recovered_after = None
        t0 = time.time()
        while time.time() - t0 < 3:
            if srv.metric("clickrt_backend_degraded", **labels) == 0:
                recovered_after = time.time() - t0
                break
            time.sleep(0.05)
        check(recovered_after is not None,
              "metrics: recovered (degraded 0) %.2f s after clear" % (recovered_after or -1))
        check(srv.request("GET", "/v2/health/ready") == (200, {"ready": True}), "ready, degraded gone")
        out, err = lt.communicate(timeout=60)
        rep = json.loads(out) if lt.returncode == 0 else {}
        print("loadtest:", out.strip() or err.strip())
        check(rep.get("errors") == 0 and rep.get("ok", 0) > 0,
              "loadtest: %s requests, %s errors; %d answered during the fault"
              % (rep.get("ok"), rep.get("errors"), during))
        check(during > 0, "requests answered while faulted: %d" % during)

        # A hang: the request is answered from the CPU engine after the 1 s deadline.
        check(srv.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "hang"})[0] == 200,
              "inject hang")
        req = {"model": "deepfm", "user_id": "1", "candidates": ["1", "2", "3"]}
        t0 = time.time()
        st, out = srv.request("POST", "/v1/rank", req)
        took = time.time() - t0
        check(st == 200 and len(out["results"]) == 3 and 0.9 < took < 3.0,
              "rank during a hang answered in %.2f s (%d)" % (took, st))
        check(srv.request("GET", "/v2/health/ready")[1].get("degraded") == ["deepfm/1"],
              "ready names the hung version")
        srv.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "clear"})
        t0 = time.time()
        while time.time() - t0 < 3 and srv.metric("clickrt_backend_degraded", **labels) != 0:
            time.sleep(0.05)
        check(srv.metric("clickrt_backend_degraded", **labels) == 0, "recovered after the hang")

        # The request log: ~1% of the scored candidates, JSON lines with the model inputs.
        written = srv.metric("clickrt_request_log_records", state="written")
        lines = []
        for f in sorted(os.listdir(reqlog)):
            lines += open(os.path.join(reqlog, f)).read().splitlines()
        rec = json.loads(lines[-1]) if lines else {}
        scored = srv.metric("clickrt_candidates_scored_total", **labels) or 0
        check(len(lines) > 0 and rec.get("model") == "deepfm" and len(rec["inputs"]["dense"]) == 13
              and len(rec["inputs"]["sparse"]) == 26 and 0 <= rec["ctr"] <= 1 and rec["ad_id"],
              "request log: %d lines (%s written) for %d candidates" % (len(lines), written, scored))
        sampled = srv.metric("clickrt_request_log_records", state="sampled") or 0
        check(scored > 0 and 0.008 < sampled / scored < 0.012,
              "request log rate about 1%% (%d of %d candidates)" % (sampled, scored))
        total = sum(os.path.getsize(os.path.join(reqlog, f)) for f in os.listdir(reqlog))
        check(total <= 1 << 20, "request log within 1 MB (%d bytes)" % total)
        srv.stop()
        servers.remove(srv)

        # Without --fault-injection the route does not exist. Every candidate logged: the logged
        # inputs, scored through /infer, give the logged ctr.
        reqlog_all = os.path.join(work, "reqlog_all")
        plain = Server(args.clickrt, os.path.join(work, "repo"),
                       ["--features", features, "--request-log", reqlog_all,
                        "--request-log-rate", "1"], log)
        servers.append(plain)
        req = {"model": "deepfm", "user_id": "3", "candidates": ["5", "8", "13", "21"], "k": 2}
        check(plain.request("POST", "/v1/rank", req)[0] == 200, "rank with the full request log")
        recs = []
        for _ in range(100):
            recs = [json.loads(l) for l in open(os.path.join(reqlog_all, "requests.log"))]
            if len(recs) >= 4:
                break
            time.sleep(0.02)
        body = {"inputs": [{"name": "dense", "datatype": "FP32", "shape": [len(recs), 13],
                            "data": [v for r in recs for v in r["inputs"]["dense"]]},
                           {"name": "sparse", "datatype": "INT64", "shape": [len(recs), 26],
                            "data": [v for r in recs for v in r["inputs"]["sparse"]]}]}
        st, out = plain.request("POST", "/v2/models/deepfm/infer", body)
        probs = out["outputs"][0]["data"] if st == 200 else []
        check(len(recs) == 4 and [r["ad_id"] for r in recs] == req["candidates"] and
              all(r["user_id"] == "3" for r in recs) and len(probs) == 4 and
              all(abs(p - r["ctr"]) <= 1e-6 for p, r in zip(probs, recs)),
              "request log: 4 records; their inputs re-scored give the logged ctr")
        st, _ = plain.request("POST", "/v2/debug/fault", {"model": "deepfm", "kind": "cuda_error"})
        check(st == 404, "no --fault-injection: /v2/debug/fault -> 404")
        if args.backend == "cpu":
            check(plain.metric("clickrt_backend_degraded") is None,
                  "no fallback metrics for a CPU engine")
        else:
            check(plain.metric("clickrt_backend_degraded", **labels) == 0,
                  "a cuda engine is served with its fallback without the flag")
    finally:
        for s in servers:
            s.stop()
        log.close()
        if FAILS or sys.exc_info()[0]:
            print(open(os.path.join(work, "server.log")).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
