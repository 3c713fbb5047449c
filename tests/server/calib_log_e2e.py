"""Calibration from live traffic (issue 8, part 4): a running `clickrt serve` writes its sampled
request log under ranking traffic; the release pipeline rebuilds the serving model as an INT8
engine calibrated on the last hour of that log plus a file of edge cases, passes the accuracy and
load-test gates against the serving fp32 version, and goes on canary on the same server.

Checks: the log holds records; the pipeline keeps only records encoded with the candidate's
schema (a version with another schema is skipped and counted); the engine says precision int8 and
names the request log and the row count (log records + edge cases) it was calibrated on; the
canary decides; the server kept serving, with zero failed requests.

usage: calib_log_e2e.py CLICKRT_BIN SOURCE_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_http import Server  # noqa: E402


def main():
    clickrt, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="clickrt_calib_log_")
    server = traffic = None
    m = os.path.join(src, "models", "deepfm")
    try:
        repo, logdir = os.path.join(tmp, "repo"), os.path.join(tmp, "log")
        v1 = os.path.join(repo, "deepfm", "1")
        os.makedirs(v1)
        for f in ("model.onnx", "schema.json", "features.json"):
            shutil.copy(os.path.join(m, f), v1)
        token = "calib-log-token"
        server = Server(clickrt, repo, ["--admin-token", token, "--features", os.path.join(m, "features.tsv"),
                                        "--request-log", logdir, "--request-log-rate", "0.2"],
                        open(os.path.join(tmp, "serve.log"), "w"), token=token)
        # Records of a version with another schema must be skipped: one such line, as a
        # version 9 whose schema.json differs (one token less in a vocabulary) would write it.
        v9 = os.path.join(repo, "deepfm", "9")
        traffic = subprocess.Popen([clickrt, "loadtest", "--url", server.url, "--mode", "closed", "--clients", "4",
                                    "--duration", "240", "--features", os.path.join(m, "features.tsv"), "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        log = os.path.join(logdir, "requests.log")
        for _ in range(200):
            if os.path.exists(log) and sum(1 for _ in open(log)) >= 3000:
                break
            time.sleep(0.1)
        records = sum(1 for _ in open(log))
        assert records > 0, "the server wrote no request-log records"
        first = json.loads(open(log).readline())
        assert first["model"] == "deepfm" and first["version"] == "1" and "inputs" in first, first
        with open(log, "a") as f:
            f.write(json.dumps(dict(first, version="9")) + "\n")
        os.makedirs(v9)
        schema = json.load(open(os.path.join(m, "schema.json")))
        field = next(f for i in schema["inputs"] for f in i["fields"] if f.get("tokens"))
        field["tokens"] = field["tokens"][:-1]
        json.dump(schema, open(os.path.join(v9, "schema.json"), "w"))
        edge = os.path.join(tmp, "edge_cases.tsv")
        with open(os.path.join(m, "val.tsv")) as f, open(edge, "w") as out:
            for i, line in enumerate(f):
                if i >= 100:
                    break
                out.write(line)
        env = dict(os.environ, PYTHONPATH=os.path.join(src, "python"))
        p = subprocess.run([sys.executable, os.path.join(src, "python", "pipeline.py"), "--repo", repo,
                            "--model", "deepfm", "--work", os.path.join(tmp, "work"), "--clickrt", clickrt,
                            "--onnx", os.path.join(m, "model.onnx"), "--schema", os.path.join(m, "schema.json"),
                            "--val", os.path.join(m, "val.tsv"), "--val-rows", "2000",
                            "--precision", "int8", "--calib-log", logdir, "--calib-hours", "1",
                            "--edge-cases", edge, "--calib-rows", "5000", "--loadtest-seconds", "3", "--min-qps", "50",
                            "--max-p99-ms", "500", "--server", server.url, "--admin-token", token,
                            "--canary-share", "0.5", "--canary-window-s", "4", "--canary-timeout-s", "120"],
                           capture_output=True, text=True, env=env, timeout=600)
        shutil.rmtree(v9)
        print(p.stdout, p.stderr, sep="\n")
        assert p.returncode in (0, 4), f"pipeline exited {p.returncode}"
        out = p.stdout
        assert "skipped (--onnx" in out
        line = next(l for l in out.splitlines() if "calibration:" in l)
        kept = int(line.split("calibration:")[1].split()[0])
        assert kept >= records and "1 of deepfm v9" in line, line
        eng = next(l for l in out.splitlines() if "engine: precision" in l)
        assert "precision int8" in eng and "(request log, last 1 h)" in eng and "edge_cases.tsv" in eng, eng
        rows = int(eng.split("calibrated on ")[1].split()[0])
        sampled = int(line.split("), ")[1].split()[0])
        assert rows == sampled + 100, eng  # the sampled log records of the last hour + 100 edge cases
        assert '"decision"' in out, "no canary decision reported"
        status, _ = server.request("GET", "/v2/health/ready")
        assert status == 200
        # Zero failed requests over the whole run (the server's own count: the load generator is
        # stopped by a signal and prints nothing).
        served = server.metric("clickrt_requests_total", endpoint="rank") or 0
        failed = server.metric("clickrt_request_failures_total") or 0
        print(f"traffic: {served:.0f} rank requests, {failed:.0f} failed")
        assert served > 1000 and failed == 0, (served, failed)
        print(f"calib_log_e2e: ok ({records} log records, {kept} kept, calibrated on {rows} rows, "
              f"exit {p.returncode})")
    finally:
        if traffic and traffic.poll() is None:
            traffic.kill()
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
