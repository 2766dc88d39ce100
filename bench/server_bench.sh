#!/usr/bin/env bash
# Server throughput on a random 2B4T-shaped model (docs/PERFORMANCE.md "Server"):
# aggregate generated tokens/s with C concurrent streams (short prompts, so the
# streams decode together), then time to first token of C simultaneous
# 128-token prompts.
#   bench/server_bench.sh BUILD_DIR [conc,...] [max_tokens]
# Writes the model once to ${BN_BENCH_DIR:-/tmp/bitnet-bench}/2b4t.gguf.
set -euo pipefail
BUILD=${1:?build dir}; CONC=${2:-1,4,8,16}; MAXT=${3:-32}
B=$BUILD/bitnet; D=${BN_BENCH_DIR:-/tmp/bitnet-bench}; mkdir -p "$D"
[ -f "$D/2b4t.gguf" ] || "$B" random-model --shape 2b4t --seed 1 -o "$D/2b4t.gguf"
LOG=$D/serve.log
"$B" serve -m "$D/2b4t.gguf" -t tests/data/tokenizer/llama3.tiktoken --port 0 --parallel 16 --ctx 256 \
  --batch 512 --max-queue 64 --timeout 120 2>"$LOG" &
PID=$!; trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
URL=http://127.0.0.1:$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$LOG" | grep -o '[0-9]*$')
t0=$(date +%s.%N); seen503=no
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)
  [ "$code" = 503 ] && seen503=yes
  [ "$code" = 200 ] && break
  sleep 0.05
done
echo "model load: $(echo "$(date +%s.%N) - $t0" | bc) s (/health said 503 while loading: $seen503)"
node bench/server_bench.mjs "$URL" 2b4t.gguf 1 2 16 >/dev/null   # warm-up (pages the weights in)
echo "# throughput: C streams at once, 16-token prompts, $MAXT tokens each"
node bench/server_bench.mjs "$URL" 2b4t.gguf "$CONC" "$MAXT" 16
echo "# time to first token: C requests with 128-token prompts at once, 2 tokens each"
node bench/server_bench.mjs "$URL" 2b4t.gguf "$CONC" 2 128
curl -s "$URL/metrics" | grep -E '^bitnet_(generated_tokens_total|prompt_tokens_total|kv_cache)'
kill -TERM $PID; wait $PID || true
