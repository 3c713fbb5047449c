#!/usr/bin/env python3
"""End to end: a canary release driven by gRPC traffic alone (clickrt.Ranking/Rank and KServe
ModelInfer through the generated client tests/server/grpc_client.cc) on the real `clickrt serve`.

Shows that gRPC requests naming no version split by the configured share, sticky per user (Rank)
and per request id (ModelInfer) with the same key hash as HTTP; that a request naming a version is
never rerouted nor counted; that their outcomes feed the comparison, so an equal candidate is
promoted and a worse one rolled back with no HTTP inference traffic at all (HTTP carries only the
admin calls and /metrics)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from onnx import numpy_helper, TensorProto
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_http import Server  # noqa: E402
from reload_canary_e2e import make_version, reversed_embeddings  # noqa: E402

FAILS = []
TOKEN = "t0ken-for-tests"
SHARE = 0.3
MASK = (1 << 64) - 1


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def routes_to_candidate(key, share):
    """canary.cc's Canary::RoutesToCandidate (FNV-1a, splitmix64 finalizer, top 53 bits < share):
    the arm a key must land on, whichever front end carries it."""
    h = 1469598103934665603
    for c in key.encode():
        h = ((h ^ c) * 1099511628211) & MASK
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & MASK
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & MASK
    h ^= h >> 31
    return (h >> 11) * 2.0 ** -53 < share


def load_pb(path):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def infer_body(deepfm):
    inputs = {n: load_pb(os.path.join(deepfm, "sample_inputs", n + ".pb"))
              for n in ("dense", "sparse")}
    rows = int(inputs["dense"].shape[0])
    return rows, {"inputs": [{"name": n, "datatype": "FP32" if a.dtype == np.float32 else "INT64",
                              "shape": list(a.shape), "data": a.reshape(-1).tolist()}
                             for n, a in inputs.items()]}


def grpc_client(args, srv, cmd, payload, timeout=120):
    out = subprocess.run([args.grpc_client, srv.grpc_addr, cmd], input=json.dumps(payload),
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("grpc client %s failed: %s" % (cmd, out.stderr[-2000:]))
    return json.loads(out.stdout)


def drive_until_decision(args, srv, work, drive, candidate, timeout=90):
    """gRPC load until the canary of `candidate` decides (seen in /metrics, so the decision is the
    one the gRPC requests' Observe makes, not one a GET of the canary state would make)."""
    stop = os.path.join(work, "stop-%s" % candidate)
    proc = subprocess.Popen([args.grpc_client, srv.grpc_addr, "drive"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(dict(drive, stop_file=stop, max_s=timeout)))
    proc.stdin.close()
    t0 = time.time()
    while time.time() - t0 < timeout:
        if srv.metric("clickrt_canary_decisions_total", model="deepfm", version=candidate):
            break
        time.sleep(0.3)
    open(stop, "w").close()
    out = json.loads(proc.stdout.read())
    proc.wait(timeout=60)
    st, state = srv.request("GET", "/v2/repository/models/deepfm/canary")
    return out, state.get("last_decision", state) if st == 200 else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--grpc-client", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    deepfm = os.path.join(args.source, "models", "deepfm")
    features = os.path.join(deepfm, "features.tsv")
    keys = [l.split("\t", 1)[0] for l in open(features) if not l.startswith("#")]
    users = [k[5:] for k in keys if k.startswith("user:")]
    items = [k[5:] for k in keys if k.startswith("item:")]
    rows, infer = infer_body(deepfm)
    work = tempfile.mkdtemp(prefix="clickrt_grpc_canary_")
    log_path = os.path.join(work, "server.log")
    log = open(log_path, "w")
    env = {k: v for k, v in os.environ.items() if k != "CLICKRT_ADMIN_TOKEN"}
    srv = None
    try:
        repo = os.path.join(work, "repo")
        make_version(deepfm, os.path.join(repo, "deepfm", "1"))
        srv = Server(args.clickrt, repo, ["--features", features],
                     log, dict(env, CLICKRT_ADMIN_TOKEN=TOKEN), token=TOKEN, timeout=60)
        check(srv.grpc_addr is not None, "gRPC listening on %s" % srv.grpc_addr)
        make_version(deepfm, os.path.join(repo, "deepfm", "2"))  # equal; loaded by the canary

        # min_requests is above what the routing phase sends to the candidate (~150), so no
        # decision can fall before the load phase whatever the machine's speed.
        canary = {"version": "2", "share": SHARE, "window_s": 4, "min_requests": 300,
                  "max_error_rate_delta": 0.01, "max_p99_ratio": 3.0, "max_ctr_drift": 0.2,
                  "max_psi": 0.2}
        st, out = srv.request("POST", "/v2/repository/models/deepfm/canary", canary)
        check(st == 200 and out.get("running") and out["baseline"]["version"] == "1",
              "canary of v2 (copy of v1) at share %.1f started: %d" % (SHARE, st))

        # --- Routing: split, sticky, versioned requests untouched ----------------------------
        routed_users = users[:150]
        ids = ["req-a%d" % i for i in range(100)]
        cands = items[:10]
        batch = []
        for u in routed_users:
            batch += [{"rpc": "rank", "body": {"model": "deepfm", "user_id": u,
                                               "candidates": cands}}] * 2
        for i in ids:
            batch += [{"rpc": "infer", "model": "deepfm", "body": dict(infer, id=i)}] * 2
        unversioned = len(batch)
        pinned = []  # (key, named version)
        for u in routed_users[:40]:
            for v in ("1", "2"):
                batch.append({"rpc": "rank", "body": {"model": "deepfm", "version": v,
                                                      "user_id": u, "candidates": cands}})
                pinned.append((u, v))
        for i in ids[:40]:
            for v in ("1", "2"):
                batch.append({"rpc": "infer", "model": "deepfm",
                              "body": dict(infer, id=i, version=v)})
                pinned.append((i, v))
        got = grpc_client(args, srv, "batch", batch)
        check(len(got) == len(batch) and all(g["code"] == 0 for g in got),
              "%d gRPC requests answered (%s)" %
              (len(got), [g["message"] for g in got if g["code"] != 0][:3]))
        arm = {}  # key -> versions answering its unversioned requests
        for item, g in zip(batch[:unversioned], got[:unversioned]):
            key = item["body"]["user_id"] if item["rpc"] == "rank" else item["body"]["id"]
            arm.setdefault(key, set()).add(g["version"])
        check(all(len(v) == 1 for v in arm.values()),
              "sticky: every user / request id got one version for all its requests")
        expected = {k: "2" if routes_to_candidate(k, SHARE) else "1" for k in arm}
        mismatched = [k for k in arm if arm[k] != {expected[k]}]
        check(not mismatched,
              "each key on the arm the shared key hash picks (as over HTTP); wrong: %s" %
              mismatched[:5])
        user_share = sum(arm[u] == {"2"} for u in routed_users) / len(routed_users)
        id_share = sum(arm[i] == {"2"} for i in ids) / len(ids)
        check(abs(user_share - SHARE) < 0.1 and abs(id_share - SHARE) < 0.12,
              "split near the share %.1f: users %.2f, request ids %.2f" %
              (SHARE, user_share, id_share))
        versioned = got[unversioned:]
        rerouted = [(k, v, g["version"]) for (k, v), g in zip(pinned, versioned)
                    if g["version"] != v]
        crossing = sum(1 for k, v in pinned if (expected.get(k) or "") != v)
        check(not rerouted and crossing >= 40,
              "a request naming a version is never rerouted (%d named the other arm's version); "
              "rerouted: %s" % (crossing, rerouted[:5]))
        st, live = srv.request("GET", "/v2/repository/models/deepfm/canary")
        b, c = live.get("baseline", {}), live.get("candidate", {})
        on_candidate = sum(g["version"] == "2" for g in got[:unversioned])
        check(st == 200 and live.get("running") and
              b.get("requests", 0) + c.get("requests", 0) == unversioned and
              c.get("requests") == on_candidate,
              "the canary counted exactly the %d unversioned gRPC requests (baseline %s, "
              "candidate %s = %d answered by v2); versioned ones not counted" %
              (unversioned, b.get("requests"), c.get("requests"), on_candidate))
        ctr_expected = len(routed_users) * 2 * len(cands) + len(ids) * 2 * rows
        check(b.get("ctr_samples", 0) + c.get("ctr_samples", 0) == ctr_expected and
              b.get("mean_ctr", 0) > 0 and c.get("mean_ctr", 0) > 0,
              "their CTRs fed both arms: %s + %s samples (expected %d), mean %.4f / %.4f" %
              (b.get("ctr_samples"), c.get("ctr_samples"), ctr_expected, b.get("mean_ctr", 0),
               c.get("mean_ctr", 0)))

        # --- Equal candidate: promoted from gRPC traffic ---------------------------------------
        drive = {"model": "deepfm", "users": users, "items": items, "candidates": 20,
                 "threads": 4, "infer": infer}
        out, dec = drive_until_decision(args, srv, work, drive, "2")
        print("     drive:", json.dumps(out))
        print("     decision:", json.dumps({k: dec.get(k) for k in (
            "decision", "reason", "error_rate_delta", "p99_ratio", "ctr_drift", "psi")}),
              "requests", dec.get("baseline", {}).get("requests"),
              dec.get("candidate", {}).get("requests"))
        check(dec.get("decision") == "promote", "equal model promoted (%s)" % dec.get("reason"))
        check(out["errors"] == 0 and out["requests"] > 0,
              "no gRPC errors during the canary (%d requests)" % out["requests"])
        by = out["by_version"]
        check(all(by.get(rpc, {}).get(v, 0) > 0 for rpc in ("rank", "infer") for v in ("1", "2")),
              "both arms answered Rank and ModelInfer: %s" % by)
        after = grpc_client(args, srv, "batch", [
            {"rpc": "rank", "body": {"model": "deepfm", "user_id": u, "candidates": cands}}
            for u in routed_users[:30]])
        check(all(g["code"] == 0 and g["version"] == "2" for g in after),
              "after promotion every user gets v2 over gRPC")

        # --- Worse candidate: rolled back from gRPC traffic ------------------------------------
        worse = os.path.join(work, "worse.onnx")
        reversed_embeddings(deepfm, worse)
        make_version(deepfm, os.path.join(repo, "deepfm", "3"), worse)
        st, out = srv.request("POST", "/v2/repository/models/deepfm/canary",
                              dict(canary, version="3"))
        check(st == 200 and out["baseline"]["version"] == "2",
              "canary of v3 (reversed embeddings) against v2: %d" % st)
        out, dec = drive_until_decision(args, srv, work, drive, "3")
        print("     drive:", json.dumps(out))
        print("     decision:", json.dumps({k: dec.get(k) for k in (
            "decision", "reason", "error_rate_delta", "p99_ratio", "ctr_drift", "psi")}),
              "requests", dec.get("baseline", {}).get("requests"),
              dec.get("candidate", {}).get("requests"))
        check(dec.get("decision") == "rollback" and
              ("CTR" in dec.get("reason", "") or "PSI" in dec.get("reason", "")),
              "worse model rolled back (%s)" % dec.get("reason"))
        check(out["errors"] == 0, "no gRPC errors during the rollback canary")
        st, meta = srv.request("GET", "/v2/models/deepfm", token=None)
        check(meta.get("versions") == ["2", "1"] and meta["parameters"]["version"] == "2",
              "after rollback v3 is unloaded and v2 serves: %s" % meta.get("versions"))

        # --- No HTTP inference traffic took part -----------------------------------------------
        http_inference = [srv.metric("clickrt_requests_total", protocol="http", endpoint=e)
                          for e in ("rank", "infer")]
        grpc_rank = srv.metric("clickrt_requests_total", protocol="grpc", endpoint="rank")
        check(http_inference == [None, None] and (grpc_rank or 0) > 0,
              "HTTP rank / infer requests: %s; gRPC rank requests: %s" %
              (http_inference, grpc_rank))
        check(srv.metric("clickrt_canary_decisions_total", model="deepfm", version="2",
                         decision="promote") == 1 and
              srv.metric("clickrt_canary_decisions_total", model="deepfm", version="3",
                         decision="rollback") == 1, "both decisions in /metrics")
    finally:
        if srv:
            srv.stop()
        log.close()
        if FAILS or sys.exc_info()[0]:
            print(open(log_path).read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
