#!/usr/bin/env python3
"""End to end: the real `clickrt serve` over HTTP and gRPC, with the in-memory store and with a
real redis-server, on free loopback ports. Every bad request is followed by a health check."""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_http import request as http_request  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


class Server:
    def __init__(self, clickrt, repo, extra, log):
        self.proc = subprocess.Popen(
            [clickrt, "serve", "--repo", repo, "--http-port", "0", "--grpc-port", "0"] + extra,
            stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.proc.stdout.readline()  # "serving http://127.0.0.1:P grpc 127.0.0.1:Q"
        if not line.startswith("serving"):
            raise RuntimeError("server did not start: %r" % line)
        parts = line.split()
        self.http_port = int(parts[1].rsplit(":", 1)[1])
        self.grpc_addr = parts[3]

    def request(self, method, path, body=None, headers=None):
        return http_request(self.http_port, method, path, body, headers)

    def alive(self):
        return self.request("GET", "/v2/health/ready")[0] == 200

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def grpc(args, srv, *cmd, stdin=None):
    out = subprocess.run([args.grpc_client, srv.grpc_addr] + list(cmd), input=stdin,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def infer_body(inputs, nested):
    return {"inputs": [{"name": n, "datatype": "FP32" if a.dtype == np.float32 else "INT64",
                        "shape": list(a.shape),
                        "data": a.tolist() if nested else a.reshape(-1).tolist()}
                       for n, a in inputs.items()]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clickrt", required=True)
    ap.add_argument("--grpc-client", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    deepfm = os.path.join(args.source, "models", "deepfm")
    work = tempfile.mkdtemp(prefix="clickrt_e2e_")
    log = open(os.path.join(work, "server.log"), "w")
    servers, redis = [], None
    try:
        # Repository: deepfm v1 from model.onnx (built at load), v2 from a prebuilt engine (the
        # default), and a tiny-queue copy for the 429 case.
        repo = os.path.join(work, "repo")
        for model, version in (("deepfm", "1"), ("deepfm", "2"), ("deepfm_q", "1")):
            d = os.path.join(repo, model, version)
            os.makedirs(d)
            for f in ("schema.json", "features.json"):
                shutil.copy(os.path.join(deepfm, f), d)
            if version == "2":
                subprocess.run([args.clickrt, "build", os.path.join(deepfm, "model.onnx"), "-o",
                                os.path.join(d, "model.engine"), "--batch", "1:64:256"],
                               check=True, capture_output=True)
                json.dump({"max_batch": 256, "max_queue_delay_us": 300}, open(os.path.join(d, "config.json"), "w"))
            else:
                shutil.copy(os.path.join(deepfm, "model.onnx"), d)
            if model == "deepfm_q":
                json.dump({"max_batch": 16, "queue_size": 16, "max_queue_delay_us": 3000000,
                           "timeout_ms": 10000, "candidates_limit": 20},
                          open(os.path.join(d, "config.json"), "w"))
        features = os.path.join(deepfm, "features.tsv")
        mem = Server(args.clickrt, repo, ["--features", features, "--read-timeout-ms", "1000",
                                          "--max-body-bytes", "2000000"], log)
        servers.append(mem)

        # Health and metadata.
        check(mem.request("GET", "/v2/health/live") == (200, {"live": True}), "live")
        check(mem.request("GET", "/v2/health/ready") == (200, {"ready": True}), "ready")
        st, meta = mem.request("GET", "/v2")
        check(st == 200 and meta["name"] == "clickrt", "server metadata")
        st, meta = mem.request("GET", "/v2/models/deepfm")
        check(st == 200 and meta["versions"] == ["2", "1"] and meta["parameters"]["version"] == "2"
              and [i["name"] for i in meta["inputs"]] == ["dense", "sparse"], "model metadata")
        st, meta = mem.request("GET", "/v2/models/deepfm/versions/1")
        check(st == 200 and meta["parameters"]["source"].endswith("model.onnx"), "version metadata")
        check(mem.request("GET", "/v2/models/deepfm/versions/1/ready")[0] == 200, "model ready")

        # Infer the sample request (flat and nested data) against the sample outputs.
        inputs = {n: load_pb(os.path.join(deepfm, "sample_inputs", n + ".pb")) for n in ("dense", "sparse")}
        expected = load_pb(os.path.join(deepfm, "sample_outputs", "prob.pb")).reshape(-1)
        http_probs = {}
        for version in ("1", "2"):
            for nested in (False, True):
                st, out = mem.request("POST", "/v2/models/deepfm/versions/%s/infer" % version,
                                      infer_body(inputs, nested))
                got = np.array(out["outputs"][0]["data"], dtype=np.float32) if st == 200 else None
                check(st == 200 and np.abs(got - expected).max() <= 1e-5,
                      "infer v%s %s matches sample_outputs" % (version, "nested" if nested else "flat"))
                http_probs[version] = got
        # gRPC: typed and raw contents, same numbers as HTTP.
        for raw in ("", "raw"):
            out = grpc(args, mem, "infer", "deepfm", *([raw] if raw else []),
                       stdin=json.dumps(infer_body(inputs, False)))
            got = np.array(out["outputs"]["prob"]["data"], dtype=np.float32)
            check(out["code"] == 0 and out["model_version"] == "2" and np.array_equal(got, http_probs["2"]),
                  "grpc ModelInfer %s equals HTTP" % (raw or "typed"))
        h = grpc(args, mem, "health", "deepfm")
        check(h["live"]["live"] and h["ready"]["ready"] and h["model_ready"]["ready"] and
              h["metadata"]["versions"] == ["2", "1"] and h["server"]["name"] == "clickrt", "grpc health/metadata")
        check(grpc(args, mem, "health", "nope")["model_ready"]["code"] == 5, "grpc unknown model NOT_FOUND")
        garbage = grpc(args, mem, "garbage")
        check(garbage["code"] != 0, "grpc malformed protobuf refused (code %d)" % garbage["code"])

        # Ranking: user n + the ad of val line n + line n's context must score like val row n.
        fj = json.load(open(os.path.join(deepfm, "features.json")))
        val = [l.rstrip("\n").split("\t") for l in open(os.path.join(deepfm, "val.tsv"))][:40]
        cols = {f: i + 1 for i, f in enumerate(["I%d" % k for k in range(1, 14)])}
        cols.update({"C%d" % k: 13 + k for k in range(1, 27)})
        val_in = {n: load_pb(os.path.join(deepfm, "val_inputs", n + ".pb"))[:40] for n in ("dense", "sparse")}
        st, out = mem.request("POST", "/v2/models/deepfm/infer", infer_body(val_in, False))
        val_probs = np.array(out["outputs"][0]["data"], dtype=np.float32)
        rank_ok, rank_requests = True, []
        for n in range(1, 21):
            ctx = {f: val[n - 1][cols[f]] for f in fj["context"] if val[n - 1][cols[f]] != ""}
            ad = str(fj["item_of_line"][n - 1])
            others = [str(fj["item_of_line"][m]) for m in range(20, 40)]
            req = {"model": "deepfm", "user_id": str(n), "context": ctx, "candidates": [ad] + others, "k": 5}
            rank_requests.append(req)
            st, out = mem.request("POST", "/v1/rank", req)
            if st != 200:
                rank_ok = False
                continue
            # Score the ad alone too: its ctr must be val row n's.
            st1, one = mem.request("POST", "/v1/rank", dict(req, candidates=[ad]))
            if abs(one["results"][0]["ctr"] - val_probs[n - 1]) > 1e-5 or len(out["results"]) != 5:
                rank_ok = False
            ctrs = [r["ctr"] for r in out["results"]]
            if ctrs != sorted(ctrs, reverse=True) or out["candidates"] != 21:
                rank_ok = False
        check(rank_ok, "rank: ctr of user n with its ad equals the model on val row n; top-5 sorted")
        mem_ranks = [mem.request("POST", "/v1/rank", r)[1] for r in rank_requests]
        g = grpc(args, mem, "rank", stdin=json.dumps(rank_requests[0]))
        check(g["code"] == 0 and g["results"] == mem_ranks[0]["results"], "grpc Rank equals HTTP")
        st, miss = mem.request("POST", "/v1/rank", {"model": "deepfm", "user_id": "nobody", "candidates": ["zz"]})
        check(st == 200 and miss["missing_rows"] == 2 and miss["missing_features"] > 0, "missing rows counted")

        # Bad input: each answered 4xx with a message, and the server keeps serving.
        big = "x" * 2500000
        bad = [
            ("POST", "/v2/models/deepfm/infer", "{not json", 400, "not valid JSON"),
            ("POST", "/v2/models/deepfm/infer", {"inputs": [{"name": "dense", "datatype": "FP32", "shape": [1, 12], "data": [0] * 12}]}, 400, "expects"),
            ("POST", "/v2/models/deepfm/infer", {"inputs": [{"name": "wide", "datatype": "FP32", "shape": [1, 13], "data": [0] * 13}]}, 400, "not an input"),
            ("POST", "/v2/models/deepfm/infer", {"inputs": [{"name": "dense", "datatype": "INT64", "shape": [1, 13], "data": [0] * 13}, {"name": "sparse", "datatype": "INT64", "shape": [1, 26], "data": [0] * 26}]}, 400, "dtype"),
            ("POST", "/v2/models/deepfm/infer", {"inputs": [{"name": "dense", "datatype": "FP32", "shape": [1, 13], "data": [0] * 13}]}, 400, "'sparse' is missing"),
            ("POST", "/v2/models/nope/infer", infer_body(inputs, False), 404, "unknown model"),
            ("POST", "/v2/models/deepfm/versions/9/infer", infer_body(inputs, False), 404, "no version"),
            ("GET", "/v2/models/deepfm/versions/x", None, 404, "no version"),
            ("POST", "/v1/rank", {"user_id": "1", "candidates": ["1"]}, 400, "names no model"),
            ("POST", "/v1/rank", {"model": "deepfm", "user_id": "1", "candidates": []}, 400, "empty"),
            ("POST", "/v1/rank", {"model": "deepfm_q", "user_id": "1", "candidates": ["1"] * 21}, 400, "exceed the limit of 20"),
            ("POST", "/v1/rank", {"model": "deepfm", "user_id": "1", "candidates": ["1"], "context": {"C1": "a"}}, 400, "not a context feature"),
            ("POST", "/v1/rank", {"model": "deepfm", "candidates": ["1"]}, 400, "user_id"),
            ("POST", "/v1/rank", big, 413, "exceeds the limit"),
            ("GET", "/v2/nothing", None, 404, "no route"),
        ]
        for method, path, body, code, text in bad:
            st, out = mem.request(method, path, body)
            msg = out.get("error", "") if isinstance(out, dict) else out
            check(st == code and text in msg and mem.alive(),
                  "bad input %s %s -> %d '%s' (got %d: %s)" % (method, path, code, text, st, msg[:100]))

        # A slow client (stalls mid-request) is dropped after the read timeout; others are served.
        s = socket.create_connection(("127.0.0.1", mem.http_port))
        s.sendall(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user")
        t0 = time.time()
        check(mem.alive(), "serving while a client stalls")
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        check(time.time() - t0 < 5, "stalled client dropped after %.1f s (%r)" % (time.time() - t0, data[:20]))
        s.close()

        # Queue full -> 429: deepfm_q holds 10 rows for 3 s (max batch 16 not reached); 10 more
        # rows would pass its queue size of 16.
        ten = {n: np.repeat(a[:1], 10, axis=0) for n, a in inputs.items()}
        c = http.client.HTTPConnection("127.0.0.1", mem.http_port, timeout=30)
        c.request("POST", "/v2/models/deepfm_q/infer", json.dumps(infer_body(ten, False)))
        time.sleep(0.5)
        st, out = mem.request("POST", "/v2/models/deepfm_q/infer", infer_body(ten, False))
        check(st == 429, "queue full -> 429 (%d %s)" % (st, str(out)[:100]))
        check(c.getresponse().status == 200, "queued request still answered")
        c.close()

        st, metrics = mem.request("GET", "/metrics")
        check('reason="invalid_argument"' in metrics and 'code="413"' in metrics and
              'code="429"' in metrics and "clickrt_batch_size_rows_bucket" in metrics and
              'clickrt_model_backend_info{backend="cpu",model="deepfm",version="2"} 1' in metrics and
              "clickrt_feature_fetch_duration_seconds" in metrics, "metrics count failures, batches, backend")

        # Redis: load the same feature file, serve from it, identical rankings.
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", rport)).close()
                break
            except OSError:
                time.sleep(0.05)
        load = subprocess.run([args.clickrt, "features", "load", features, "--redis", "127.0.0.1:%d" % rport],
                              capture_output=True, text=True)
        check(load.returncode == 0, "clickrt features load into redis (%s)" % load.stderr.strip()[:200])
        red = Server(args.clickrt, repo, ["--redis", "127.0.0.1:%d" % rport], log)
        servers.append(red)
        red_ranks = [red.request("POST", "/v1/rank", r)[1] for r in rank_requests]
        check(red_ranks == mem_ranks, "redis and memory stores give identical rankings")

        # Load: a few seconds closed loop, no errors.
        lt = subprocess.run([args.clickrt, "loadtest", "--url", "http://127.0.0.1:%d" % mem.http_port,
                             "--model", "deepfm", "--features", features, "--mode", "closed",
                             "--clients", "4", "--duration", "3", "--candidates", "100", "--json"],
                            capture_output=True, text=True)
        rep = json.loads(lt.stdout) if lt.returncode == 0 else {}
        print("loadtest:", lt.stdout.strip() or lt.stderr.strip())
        check(rep.get("errors") == 0 and rep.get("ok", 0) > 0, "loadtest: %s requests, 0 errors" % rep.get("ok"))
        refused = subprocess.run([args.clickrt, "loadtest", "--url", "http://192.0.2.1:8000"],
                                 capture_output=True, text=True)
        check(refused.returncode != 0 and "loopback" in refused.stderr, "loadtest refuses non-loopback hosts")
        check(mem.alive() and red.alive(), "servers still up at the end")
    finally:
        for s in servers:
            s.stop()
        if redis:
            redis.terminate()
            redis.wait()
        log.close()
        if FAILS or sys.exc_info()[0]:
            print(open(os.path.join(work, "server.log")).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
