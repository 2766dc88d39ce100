#!/usr/bin/env bash
# bitnet serve, end to end: the real server on a small model, driven by the
# official OpenAI Node SDK (tests/server/sdk.test.mjs) plus raw HTTP cases;
# API keys, rate limits, usage after kill -9, SIGTERM drain, a leak loop.
#   BN_SERVER_MODEL / BN_SERVER_TOKENIZER  model to serve (default: models/demo.gguf
#       when present, else a random tiny model + tests/data/server/tokenizer)
#   BN_SERVER_LEAK_N   requests in the leak loop (default 200; run 3000 by hand
#       in the ASan build, see docs/SERVER.md)
set -euo pipefail
B=${BN_BITNET:?}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
SRC=$(pwd)
T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

command -v node >/dev/null || { echo "node is required (scripts/deps.sh installs it)"; exit 1; }
if [ ! -f tests/server/node_modules/openai/package.json ]; then
  (cd tests/server && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed: the openai SDK is needed"; exit 1; }
fi

if [ -n "${BN_SERVER_MODEL:-}" ]; then
  MODEL=$BN_SERVER_MODEL; TOKARGS=(${BN_SERVER_TOKENIZER:+-t "$BN_SERVER_TOKENIZER"})
elif [ -f models/demo.gguf ]; then
  MODEL=models/demo.gguf; TOKARGS=()
else
  "$B" random-model --shape tiny --seed 7 -o "$T/tiny.gguf" >/dev/null
  MODEL=$T/tiny.gguf; TOKARGS=(-t tests/data/server/tokenizer)
fi
export BN_MODEL=$(basename "$MODEL")

# status code of GET /health (bash's /dev/tcp: no curl needed)
health_code() {
  local line=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && read -r -t 5 line <&3; } 2>/dev/null || true
  exec 3<&- 3>&- 2>/dev/null || true
  echo "$line" | awk '{print $2}'
}
# start_server LOG ARGS... : sets SPID and BN_URL once /health answers 200
start_server() {
  local log=$1; shift
  "$B" serve -m "$MODEL" "${TOKARGS[@]}" --port 0 --ctx 256 --parallel 4 --threads 1 --timeout 4 --quiet "$@" 2>"$log" &
  SPID=$!; PIDS+=("$SPID")
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 "$SPID" 2>/dev/null || { cat "$log"; echo "server died"; exit 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log"; echo "server did not start"; exit 1; }
  export BN_URL=http://127.0.0.1:$port
  local code=""
  for _ in $(seq 1 600); do
    code=$(health_code "$port")
    case $code in 200) break ;; 503) ;; *) echo "health: unexpected $code"; exit 1 ;; esac
    sleep 0.1
  done
  [ "$code" = 200 ] || { cat "$log"; echo "server never became ready"; exit 1; }
}
# stop_server: SIGTERM, expect a clean exit (under ASan: also no leaks)
stop_server() {
  kill -TERM "$SPID"
  local rc=0; wait "$SPID" || rc=$?
  [ $rc -eq 0 ] || { cat "$1"; echo "server exited with $rc after SIGTERM"; exit 1; }
}
rss_kb() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }

echo "== refuses a non-loopback address without keys"
if out=$("$B" serve -m "$MODEL" "${TOKARGS[@]}" --host 0.0.0.0 --port 0 2>&1); then echo "should have refused"; exit 1; fi
echo "$out" | grep -q "refusing to listen on 0.0.0.0 without API keys" || { echo "message: $out"; exit 1; }

echo "== main: SDK chat/completions, errors, 16 concurrent streams, raw HTTP"
start_server "$T/main.log" --parallel 8 --max-queue 32 --max-body 1048576
(cd tests/server && node sdk.test.mjs main)
stop_server "$T/main.log"

echo "== bounded queue: 503 when full"
start_server "$T/busy.log" --parallel 1 --max-queue 2 --kv f16  # (also: the f16 KV cache serves)
(cd tests/server && node sdk.test.mjs busy)
stop_server "$T/busy.log"

echo "== SIGTERM drains the request in flight"
start_server "$T/drain.log"
(cd tests/server && BN_PID=$SPID node sdk.test.mjs drain)
rc=0; wait "$SPID" || rc=$?
[ $rc -eq 0 ] || { cat "$T/drain.log"; echo "drain exit $rc"; exit 1; }
grep -q "finishing requests in flight" "$T/drain.log"

echo "== API keys, rate limits, revocation"
DB=$T/keys.db
export BN_KEYS_DB=$DB BN_BITNET=$B
export BN_KEY=$("$B" keys create --name first --keys-db "$DB" 2>/dev/null)
export BN_KEY2=$("$B" keys create --name second --keys-db "$DB" 2>/dev/null)
export BN_KEY_LIMITED=$("$B" keys create --name limited --rpm 2 --tpm 100000 --keys-db "$DB" 2>/dev/null)
[[ $BN_KEY =~ ^bn-[0-9a-f]{64}$ ]] || { echo "bad key format: $BN_KEY"; exit 1; }
if "$B" keys create --name first --keys-db "$DB" 2>/dev/null; then echo "duplicate name accepted"; exit 1; fi
# only the hash is stored
if grep -q "${BN_KEY#bn-}" "$DB"; then echo "key stored in clear"; exit 1; fi
start_server "$T/auth.log" --keys-db "$DB"
(cd tests/server && node sdk.test.mjs auth)
stop_server "$T/auth.log"
"$B" keys list --keys-db "$DB" | grep -E "^second .*revoked" >/dev/null || { "$B" keys list --keys-db "$DB"; exit 1; }

echo "== kill -9 under load loses no finished request's usage"
"$B" usage --json --keys-db "$DB" > "$T/usage0.json"
start_server "$T/kill.log" --keys-db "$DB"
: > "$T/finished"
(cd tests/server && BN_OUT="$T/finished" node sdk.test.mjs load) > "$T/load.out" 2>&1 &
LPID=$!
for _ in $(seq 1 200); do [ "$(wc -l < "$T/finished")" -ge 20 ] && break; sleep 0.05; done
kill -9 "$SPID"; wait "$SPID" 2>/dev/null || true
wait "$LPID" || { cat "$T/load.out"; exit 1; }
"$B" usage --json --keys-db "$DB" --key first > "$T/usage1.json"
python3 - "$T/usage0.json" "$T/usage1.json" "$T/finished" <<'PY'
import json, sys
before = sum(r["requests"] for r in json.load(open(sys.argv[1])) if r["key"] == "first")
rows = json.load(open(sys.argv[2]))
fin = [tuple(map(int, l.split())) for l in open(sys.argv[3]) if l.strip()]
got = sum(r["requests"] for r in rows) - before
print(f"finished (client saw the response): {len(fin)}, usage rows count {got} new requests")
assert len(fin) >= 10, "load too short"
# every finished request is counted; at most the 4 in flight were counted
# without their response reaching the client
assert len(fin) <= got <= len(fin) + 4, (len(fin), got)
PY

echo "== leak loop: ${BN_SERVER_LEAK_N:-200} mixed requests"
start_server "$T/leak.log"
(cd tests/server && BN_N=20 node sdk.test.mjs leak) >/dev/null
r0=$(rss_kb "$SPID")
(cd tests/server && BN_N=${BN_SERVER_LEAK_N:-200} node sdk.test.mjs leak)
r1=$(rss_kb "$SPID")
echo "server RSS after warm-up ${r0} kB, after the loop ${r1} kB"
stop_server "$T/leak.log"
# RSS growth is judged on normal builds (ASan's quarantine holds freed memory;
# there LeakSanitizer at exit is the check)
if ! ldd "$B" | grep -q libasan && [ "${BN_SERVER_LEAK_N:-200}" -ge 1000 ] && [ $((r1 - r0)) -gt 16384 ]; then
  echo "RSS grew by $((r1 - r0)) kB"; exit 1
fi
echo "server tests passed"
