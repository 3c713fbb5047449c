#!/usr/bin/env bash
# `clickrt features load|get` as a user runs them, against a real redis-server on loopback.
# Usage: features_cli_test.sh CLICKRT_BIN SOURCE_DIR
set -uo pipefail
BIN=$1
SRC=$2
if [[ ! -x /usr/bin/redis-server ]]; then
  echo "SKIP: /usr/bin/redis-server not found"
  exit 77
fi
TMP=$(mktemp -d)
REDIS_PID=
trap 'kill $REDIS_PID 2>/dev/null; wait $REDIS_PID 2>/dev/null; rm -rf "$TMP"' EXIT
# A free port can be taken by another process before redis-server binds it; then our server
# exits at once while the other one answers. Try a few ports until our own server is alive.
for _ in 1 2 3 4 5; do
  PORT=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  /usr/bin/redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.1)" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.1
  kill -0 "$REDIS_PID" 2>/dev/null && break
done

failures=0
check() {  # check NAME EXPECTED_RC PATTERN -- command...
  local name=$1 want=$2 pattern=$3
  shift 4
  "$@" >"$TMP/out" 2>&1
  local rc=$?
  if [[ $rc -ne $want ]] || ! grep -qE -- "$pattern" "$TMP/out"; then
    echo "FAIL $name: exit $rc (want $want), output:"
    cat "$TMP/out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

R=127.0.0.1:$PORT
check load 0 "^loaded 3999 rows from .*deepfm/features.tsv into redis $R \(prefix 'cli:'\) in [0-9.]+ s" -- \
  "$BIN" features load "$SRC/models/deepfm/features.tsv" --redis "$R" --prefix cli: --batch 256 -q
check get_redis 0 '"I5": "2188"' -- "$BIN" features get user:1 item:1 nobody --redis "$R" --prefix cli:
check get_null 0 '"nobody": null' -- "$BIN" features get nobody --redis "$R" --prefix cli:
check get_file 0 '"C1": "249e0d00"' -- "$BIN" features get user:1 --file "$SRC/models/deepfm/features.tsv"
# The same row from Redis and from the file.
"$BIN" features get user:7 item:5 --redis "$R" --prefix cli: >"$TMP/a.json"
"$BIN" features get user:7 item:5 --file "$SRC/models/deepfm/features.tsv" >"$TMP/b.json"
if cmp -s "$TMP/a.json" "$TMP/b.json"; then echo "ok   redis_equals_file"; else
  echo "FAIL redis_equals_file"; diff "$TMP/a.json" "$TMP/b.json" | head; failures=$((failures + 1)); fi

printf 'user:1\tC1=a\nuser:2\tnovalue\n' >"$TMP/bad.tsv"
check bad_line 1 "bad.tsv: line 2: column 2 is not <name>=<value>" -- \
  "$BIN" features load "$TMP/bad.tsv" --redis "$R"
check no_file 3 "NOT_FOUND: cannot open feature file" -- \
  "$BIN" features load "$TMP/missing.tsv" --redis "$R"
check unreachable 1 "UNAVAILABLE: redis 127.0.0.1:1: cannot connect" -- \
  "$BIN" features load "$SRC/models/deepfm/features.tsv" --redis 127.0.0.1:1
check bad_address 1 "port must be in \[1, 65535\]" -- \
  "$BIN" features get k --redis host:99999
check both_sources 1 "exactly one of --redis" -- \
  "$BIN" features get k --redis "$R" --file "$SRC/models/deepfm/features.tsv"
check help 0 "Usage: .*features load" -- "$BIN" features load --help
check usage 2 "redis is required" -- "$BIN" features load "$SRC/models/deepfm/features.tsv"

[[ $failures -eq 0 ]] && echo "all passed" || echo "$failures failed"
exit $((failures > 0))
