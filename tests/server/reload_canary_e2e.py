#!/usr/bin/env python3
"""End to end: hot reload under load, canary promote / rollback and admin security, on the real
`clickrt serve` process (loopback, free ports, the in-memory feature store)."""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import numpy_helper
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_http import Server  # noqa: E402

FAILS = []
TOKEN = "t0ken-for-tests"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def make_version(deepfm, d, onnx_path=None):
    os.makedirs(d)
    for f in ("schema.json", "features.json"):
        shutil.copy(os.path.join(deepfm, f), d)
    shutil.copy(onnx_path or os.path.join(deepfm, "model.onnx"), os.path.join(d, "model.onnx"))


def reversed_embeddings(deepfm, out):
    """DeepFM with its embedding rows reversed: every id looks up another id's vector."""
    m = onnx.load(os.path.join(deepfm, "model.onnx"))
    for t in m.graph.initializer:
        if t.name in ("embedding.table.weight", "first_order.table.weight"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[::-1].copy(), t.name))
    onnx.save(m, out)


def versions_served(metrics):
    """Requests answered per version of deepfm on /v1/rank."""
    out = {}
    for m in re.finditer(r'clickrt_requests_total\{([^}]*)\} (\S+)', metrics):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("endpoint") == "rank" and labels.get("code") == "200":
            out[labels["version"]] = out.get(labels["version"], 0) + float(m.group(2))
    return out


class RankDriver:
    """Threads sending /v1/rank for random users of the feature file (many users, so both arms
    of a canary see the same population)."""

    def __init__(self, srv, users, items, threads=4):
        self.srv, self.users, self.items = srv, users, items
        self.stop_flag = threading.Event()
        self.count, self.errors = 0, 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, seed):
        rng = random.Random(seed)
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        while not self.stop_flag.is_set():
            body = json.dumps({"model": "deepfm", "user_id": rng.choice(self.users),
                               "candidates": rng.sample(self.items, 20)})
            try:
                c.request("POST", "/v1/rank", body=body)
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except OSError:
                ok = False
                c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
            with self.lock:
                self.count += 1
                self.errors += 0 if ok else 1

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()


def wait_decision(srv, model, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st, out = srv.request("GET", "/v2/repository/models/%s/canary" % model)
        if st == 200 and not out.get("running", True):
            return out.get("last_decision", out)
        time.sleep(0.3)
    return srv.request("GET", "/v2/repository/models/%s/canary" % model)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    deepfm = os.path.join(args.source, "models", "deepfm")
    features = os.path.join(deepfm, "features.tsv")
    keys = [l.split("\t", 1)[0] for l in open(features) if not l.startswith("#")]
    users = [k[5:] for k in keys if k.startswith("user:")]
    items = [k[5:] for k in keys if k.startswith("item:")]
    work = tempfile.mkdtemp(prefix="clickrt_reload_")
    log_path = os.path.join(work, "server.log")
    log = open(log_path, "w")
    env = {k: v for k, v in os.environ.items() if k != "CLICKRT_ADMIN_TOKEN"}
    servers = []
    try:
        repo = os.path.join(work, "repo")
        make_version(deepfm, os.path.join(repo, "deepfm", "1"))
        # The token through the environment (the recommended way: not visible in `ps`).
        srv = Server(args.clickrt, repo, ["--features", features],
                     log, dict(env, CLICKRT_ADMIN_TOKEN=TOKEN), token=TOKEN, timeout=60)
        servers.append(srv)

        # --- Admin security -------------------------------------------------------------------
        off = Server(args.clickrt, repo, [], log, env, token=TOKEN, timeout=60)
        servers.append(off)
        st_load = off.request("POST", "/v2/repository/models/deepfm/load", {"version": "1"})[0]
        st_index = off.request("GET", "/v2/repository/index")[0]
        check(st_load == 404 and st_index == 404,
              "admin off by default: load %d, index %d (404)" % (st_load, st_index))
        off.stop()
        servers.remove(off)
        st_none = srv.request("GET", "/v2/repository/index", token=None)[0]
        st_wrong = srv.request("GET", "/v2/repository/index", token="wrong")[0]
        st_wrong_load = srv.request("POST", "/v2/repository/models/deepfm/unload",
                                    {"version": "1"}, token="t0ken-for-test")[0]
        check(st_none == 401 and st_wrong == 401 and st_wrong_load == 401,
              "no token / wrong token -> 401 (%d, %d, %d)" % (st_none, st_wrong, st_wrong_load))
        traversal = [
            ("/v2/repository/models/../load", None),
            ("/v2/repository/models/..%2F..%2Fetc/load", None),
            ("/v2/repository/models/.deepfm/load", None),
            ("/v2/repository/models/deepfm/load", {"version": "../../../etc"}),
            ("/v2/repository/models/deepfm/load", {"version": ".."}),
        ]
        all_refused = True
        for path, body in traversal:
            st, out = srv.request("POST", path, body)
            msg = out.get("error", "") if isinstance(out, dict) else str(out)
            refused = st in (400, 404) and ("not allowed" in msg or "no route" in msg)
            print("     traversal %s %s -> %d %s" % (path, body, st, msg[:90]))
            all_refused = all_refused and refused
        check(all_refused, "path traversal attempts refused (400 / 404)")
        st, idx = srv.request("GET", "/v2/repository/index")
        check(st == 200 and idx == [{"name": "deepfm", "version": "1", "state": "READY",
                                     "default": True}], "index: %s" % idx)

        # --- Hot reload under load ------------------------------------------------------------
        make_version(deepfm, os.path.join(repo, "deepfm", "2"))
        lt = subprocess.Popen([args.clickrt, "loadtest", "--url", srv.url, "--model", "deepfm",
                               "--features", features, "--mode", "closed", "--clients", "8",
                               "--duration", "6", "--candidates", "20", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Swap only once v1 is answering the load (a busy machine starts the load generator late).
        for _ in range(200):
            if versions_served(srv.request("GET", "/metrics")[1]).get("1", 0) >= 100:
                break
            time.sleep(0.05)
        t0 = time.time()
        st, out = srv.request("POST", "/v2/repository/models/deepfm/load", {"version": "2"})
        load_s = time.time() - t0
        check(st == 200 and out.get("loaded") == ["2"],
              "load v2 under load: %d %s (%.2f s)" % (st, out, load_s))
        time.sleep(1.0)
        st, out = srv.request("POST", "/v2/repository/models/deepfm/unload", {"version": "1"})
        check(st == 200 and out.get("unloaded") == ["1"], "unload v1 under load: %d %s" % (st, out))
        lt_out, lt_err = lt.communicate(timeout=60)
        rep = json.loads(lt_out) if lt.returncode == 0 else {}
        print("     loadtest:", lt_out.strip() or lt_err.strip())
        served = versions_served(srv.request("GET", "/metrics")[1])
        check(rep.get("errors") == 0 and rep.get("ok", 0) >= 1000,
              "loadtest across load v2 / unload v1: %s ok, %s errors" %
              (rep.get("ok"), rep.get("errors")))
        check(served.get("1", 0) > 0 and served.get("2", 0) > 0,
              "both versions answered during the swap: %s" % served)
        st, meta = srv.request("GET", "/v2/models/deepfm", token=None)
        check(st == 200 and meta["versions"] == ["2"] and meta["parameters"]["version"] == "2",
              "after the swap deepfm serves only v2: %s" % meta.get("versions"))

        # A corrupt version fails to load; v2 keeps serving.
        bad = os.path.join(repo, "deepfm", "3")
        os.makedirs(bad)
        shutil.copy(os.path.join(deepfm, "schema.json"), bad)
        with open(os.path.join(bad, "model.engine"), "wb") as f:
            f.write(os.urandom(4096))
        st, out = srv.request("POST", "/v2/repository/models/deepfm/load", {"version": "3"})
        msg = out.get("error", "") if isinstance(out, dict) else str(out)
        print("     corrupt v3 ->", st, msg[:200])
        check(st >= 400 and "deepfm/3" in msg and "model.engine" in msg,
              "corrupt v3 refused with a message naming it (%d)" % st)
        st, r = srv.request("POST", "/v1/rank", {"model": "deepfm", "user_id": users[0],
                                                 "candidates": items[:5]}, token=None)
        check(st == 200 and r["version"] == "2", "v2 still serves after the failed load")
        st, idx = srv.request("GET", "/v2/repository/index")
        v3 = [e for e in idx if e["version"] == "3"]
        check(v3 and v3[0]["state"] == "UNAVAILABLE" and "load failed" in v3[0].get("reason", ""),
              "index shows v3 UNAVAILABLE with its error")
        metrics = srv.request("GET", "/metrics")[1]
        check('clickrt_model_load_failures_total{model="deepfm",version="3"} 1' in metrics,
              "load failure counted in /metrics")
        shutil.rmtree(bad)

        # --- Canary: same model -> promoted -------------------------------------------------
        make_version(deepfm, os.path.join(repo, "deepfm", "4"))
        canary = {"version": "4", "share": 0.5, "window_s": 3, "min_requests": 100,
                  "max_error_rate_delta": 0.01, "max_p99_ratio": 3.0, "max_ctr_drift": 0.2,
                  "max_psi": 0.2}
        st, out = srv.request("POST", "/v2/repository/models/deepfm/canary", canary)
        check(st == 200 and out.get("running") and out["baseline"]["version"] == "2",
              "canary of v4 (copy of v2) started: %d" % st)
        drv = RankDriver(srv, users, items)
        time.sleep(1.0)
        st, live = srv.request("GET", "/v2/repository/models/deepfm/canary")
        check(st == 200 and live.get("running") and live["candidate"]["requests"] > 0 and
              live["baseline"]["requests"] > 0,
              "live canary state: baseline %s / candidate %s requests" %
              (live.get("baseline", {}).get("requests"), live.get("candidate", {}).get("requests")))
        dec = wait_decision(srv, "deepfm", 30)
        drv.stop()
        print("     decision:", json.dumps({k: dec.get(k) for k in (
            "decision", "reason", "error_rate_delta", "p99_ratio", "ctr_drift", "psi")}),
              "requests", dec.get("baseline", {}).get("requests"),
              dec.get("candidate", {}).get("requests"))
        check(dec.get("decision") == "promote", "same model promoted (%s)" % dec.get("reason"))
        st, r = srv.request("POST", "/v1/rank", {"model": "deepfm", "user_id": users[1],
                                                 "candidates": items[:5]}, token=None)
        check(st == 200 and r["version"] == "4", "after promotion v4 is the default")
        check(drv.errors == 0, "no errors during the promote canary (%d requests)" % drv.count)

        # --- Canary: worse model -> rolled back -----------------------------------------------
        worse = os.path.join(work, "worse.onnx")
        reversed_embeddings(deepfm, worse)
        make_version(deepfm, os.path.join(repo, "deepfm", "5"), worse)
        st, out = srv.request("POST", "/v2/repository/models/deepfm/canary",
                              dict(canary, version="5"))
        check(st == 200 and out["baseline"]["version"] == "4",
              "canary of v5 (reversed embeddings) against v4: %d" % st)
        drv = RankDriver(srv, users, items)
        dec = wait_decision(srv, "deepfm", 30)
        drv.stop()
        print("     decision:", json.dumps({k: dec.get(k) for k in (
            "decision", "reason", "error_rate_delta", "p99_ratio", "ctr_drift", "psi")}),
              "requests", dec.get("baseline", {}).get("requests"),
              dec.get("candidate", {}).get("requests"))
        check(dec.get("decision") == "rollback" and
              ("CTR" in dec.get("reason", "") or "PSI" in dec.get("reason", "")),
              "worse model rolled back (%s)" % dec.get("reason"))
        st, meta = srv.request("GET", "/v2/models/deepfm", token=None)
        check(meta["versions"] == ["4", "2"] and meta["parameters"]["version"] == "4",
              "after rollback v5 is unloaded and v4 serves: %s" % meta.get("versions"))
        metrics = srv.request("GET", "/metrics")[1]
        check('clickrt_canary_decisions_total{decision="promote",model="deepfm",version="4"} 1'
              in metrics and
              'clickrt_canary_decisions_total{decision="rollback",model="deepfm",version="5"} 1'
              in metrics and "clickrt_canary_psi" in metrics, "canary decisions in /metrics")
        log.flush()
        lines = [l for l in open(log_path) if '"event":"canary_decision"' in l]
        check(len(lines) == 2 and all(json.loads(l)["canary"]["decision"] in
                                      ("promote", "rollback") for l in lines),
              "two decision log lines (JSON)")
        st, out = srv.request("POST", "/v2/repository/models/deepfm/canary",
                              dict(canary, version="9"))
        check(st == 404, "canary of a missing version -> 404 (%d)" % st)

        # --- Polling ---------------------------------------------------------------------------
        poll = Server(args.clickrt, repo, ["--poll-interval-s", "0.5"], log, env, token=TOKEN, timeout=60)
        servers.append(poll)
        make_version(deepfm, os.path.join(repo, "deepfm", "6"))
        shutil.rmtree(os.path.join(repo, "deepfm", "2"))
        versions = None
        for _ in range(60):
            versions = poll.request("GET", "/v2/models/deepfm", token=None)[1].get("versions")
            if versions == ["6", "5", "4", "1"]:
                break
            time.sleep(0.5)
        # v1 and v5 were unloaded from the first server only: their folders are still there.
        check(versions == ["6", "5", "4", "1"],
              "polling loads v6 and unloads removed v2: %s" % versions)
        check(srv.request("GET", "/v2/health/ready", token=None)[0] == 200, "server still up")
    finally:
        for s in servers:
            s.stop()
        log.close()
        if FAILS or sys.exc_info()[0]:
            print(open(log_path).read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
