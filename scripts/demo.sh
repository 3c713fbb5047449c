#!/usr/bin/env bash
# The main job on the embedded default: install, build clickrt, compile the bundled DeepFM into a
# CPU engine, score the sample request with it (and with the reference executor, to show they
# agree), time it, then serve it (KServe v2 + /v1/rank, in-memory feature store) and rank a sample
# request of 10 candidate ads.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
MODEL="${MODEL:-models/deepfm}"
ENGINE="build/$(basename "$MODEL").engine"
echo
echo "== clickrt info $MODEL/model.onnx"
build/bin/clickrt info "$MODEL/model.onnx"
echo
echo "== clickrt build $MODEL/model.onnx -o $ENGINE"
build/bin/clickrt build "$MODEL/model.onnx" -o "$ENGINE" --batch 1:64:1024
echo
echo "== clickrt run --engine $ENGINE: click probabilities for the sample request ($MODEL/sample_inputs)"
build/bin/clickrt run --engine "$ENGINE" --inputs "$MODEL/sample_inputs"
echo
echo "== the same request through the reference executor (the ground truth)"
build/bin/clickrt run --model "$MODEL/model.onnx" --inputs "$MODEL/sample_inputs"
echo
echo "== clickrt bench $ENGINE --batch 64"
build/bin/clickrt bench "$ENGINE" --batch 64 --duration 2
echo
echo "== clickrt serve: a model repository with $ENGINE and the embedded in-memory feature store"
REPO="build/repo"
rm -rf "$REPO" && mkdir -p "$REPO/$(basename "$MODEL")/1"
cp "$ENGINE" "$REPO/$(basename "$MODEL")/1/model.engine"
cp "$MODEL/schema.json" "$MODEL/features.json" "$REPO/$(basename "$MODEL")/1/"
PORT="${PORT:-18000}"
build/bin/clickrt serve --repo "$REPO" --features "$MODEL/features.tsv" --http-port "$PORT" \
  --grpc-port -1 >build/serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
/usr/bin/python3 - "$PORT" "$MODEL" <<'PY'
# Waits for the server, then ranks 10 candidate ads for user 1 (features from the store,
# context from the first validation row) and prints the top 5.
import json, sys, time, urllib.request
port, model = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        if urllib.request.urlopen(base + "/v2/health/ready", timeout=1).status == 200:
            break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("server did not become ready (see build/serve.log)")
fj = json.load(open(f"{model}/features.json"))
schema = json.load(open(f"{model}/schema.json"))
cols = {f["name"]: f["column"] for i in schema["inputs"] for f in i["fields"]}
row = open(f"{model}/val.tsv").readline().rstrip("\n").split("\t")
context = {f: row[cols[f]] for f in fj["context"] if row[cols[f]] != ""}
candidates = [str(a) for a in fj["item_of_line"][:10]]
req = {"user_id": "1", "context": context, "candidates": candidates, "k": 5}
print("POST /v1/rank", json.dumps(req))
r = urllib.request.urlopen(urllib.request.Request(base + "/v1/rank", json.dumps(req).encode(),
                                                  {"Content-Type": "application/json"}), timeout=10)
res = json.load(r)
print(f"model {res['model']} version {res['version']}: top {len(res['results'])} of {res['candidates']} candidates")
for i, x in enumerate(res["results"], 1):
    print(f"  {i}. ad {x['ad_id']:>6}  ctr {x['ctr']:.6f}")
PY
kill $SERVER 2>/dev/null || true
wait $SERVER 2>/dev/null || true
echo "(server stopped; its log is build/serve.log)"
