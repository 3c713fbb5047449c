"""The release pipeline end to end on synthetic data (issue 8): python/pipeline.py against a real
`clickrt serve` with the admin API on, under ranking traffic from `clickrt loadtest`.

1. A candidate trained on little data, with a loose AUC budget, passes the accuracy and load-test
   gates and goes on canary; the server decides (promote or roll back) and the pipeline reports it.
2. The same candidate with the default budget (0.001) is stopped by the accuracy gate (exit 2)
   before it reaches the server.

usage: pipeline_e2e.py CLICKRT_BIN SOURCE_DIR
"""
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    clickrt, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="clickrt_pipeline_")
    server = traffic = None
    try:
        repo = os.path.join(tmp, "repo")
        v1 = os.path.join(repo, "deepfm", "1")
        os.makedirs(v1)
        for f in ("model.onnx", "schema.json", "features.json"):
            shutil.copy(os.path.join(src, "models", "deepfm", f), v1)
        port, token = free_port(), "pipeline-test-token"
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([clickrt, "serve", "--repo", repo, "--http-port", str(port), "--grpc-port", "-1",
                                   "--admin-token", token, "--features",
                                   os.path.join(src, "models", "deepfm", "features.tsv")],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
        for _ in range(300):
            try:
                if urllib.request.urlopen(url + "/v2/health/ready", timeout=1).status == 200:
                    break
            except Exception:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start: " + open(os.path.join(tmp, "serve.log")).read()[-2000:])
        traffic = subprocess.Popen([clickrt, "loadtest", "--url", url, "--mode", "closed", "--clients", "4",
                                    "--duration", "240", "--features",
                                    os.path.join(src, "models", "deepfm", "features.tsv"), "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        env = dict(os.environ, PYTHONPATH=os.path.join(src, "python"))
        common = [sys.executable, os.path.join(src, "python", "pipeline.py"), "--repo", repo, "--model", "deepfm",
                  "--clickrt", clickrt, "--val-rows", "4000", "--config", '{"embed_dim": 8, "dnn": [64, 64]}',
                  "--loadtest-seconds", "3", "--min-qps", "50", "--max-p99-ms", "500"]
        work = os.path.join(tmp, "work1")
        t0 = time.time()
        p = subprocess.run(common + ["--work", work, "--generate", "30000", "--max-auc-drop", "0.5",
                                     "--server", url, "--admin-token", token, "--canary-share", "0.5",
                                     "--canary-window-s", "4", "--canary-timeout-s", "120"],
                           capture_output=True, text=True, env=env, timeout=600)
        print(p.stdout, p.stderr, sep="\n")
        assert p.returncode in (0, 4), f"pipeline exited {p.returncode}"
        for n in range(1, 8):
            assert f"[{n}/7]" in p.stdout, f"step {n} missing"
        assert '"decision"' in p.stdout, "no canary decision reported"
        assert (p.returncode == 0) == ("promoted" in p.stdout)
        print(f"run 1: exit {p.returncode} in {time.time() - t0:.0f} s")
        # The server kept serving the whole time.
        assert urllib.request.urlopen(url + "/v2/health/ready", timeout=5).status == 200
        # 2. The default AUC budget stops the same weak candidate at the accuracy gate.
        p2 = subprocess.run(common + ["--work", os.path.join(tmp, "work2"), "--data", os.path.join(work, "data")],
                            capture_output=True, text=True, env=env, timeout=600)
        print(p2.stdout, p2.stderr, sep="\n")
        assert p2.returncode == 2, f"accuracy gate should stop it (exit 2), got {p2.returncode}"
        assert "accuracy gate: AUC drops by" in p2.stderr
        assert "[6/7]" not in p2.stdout
        traffic.send_signal(signal.SIGINT)
        try:
            out, _ = traffic.communicate(timeout=30)
            rep = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            print("traffic during the pipeline:", json.dumps({k: rep.get(k) for k in ("requests", "errors", "qps")}))
        except Exception:
            traffic.kill()
        print("pipeline_e2e: ok")
    finally:
        for proc in (traffic, server):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
