#!/usr/bin/env bash
# device.sh — `--device cpu|cuda` on the commands that run a model: cpu gives
# the same ids as no flag; cuda either runs (a CUDA build with a GPU: then its
# greedy ids must equal the CPU's) or fails with exit 1 and a message saying
# why (no CUDA backend in this build, or no GPU); a bad value is a usage error.
# `--kv f16` (f16 KV cache) runs and changes the logits slightly, not wildly.
# The model options of every run command: `--repack` gives the same ids,
# `--head q8 --no-mmap` runs, a bad --head is a usage error.
set -euo pipefail
BN=${BN_BITNET:?BN_BITNET not set}
SRC=${BN_SOURCE_DIR:-.}
M="$SRC/models/demo.gguf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BN" generate -m "$M" -p "Once upon a time" -n 12 --temp 0 --print-ids >"$TMP/plain" 2>/dev/null || fail "generate"
"$BN" generate -m "$M" -p "Once upon a time" -n 12 --temp 0 --print-ids --device cpu >"$TMP/cpu" 2>/dev/null || fail "generate --device cpu"
cmp -s "$TMP/plain" "$TMP/cpu" || fail "--device cpu changed the output"
"$BN" generate -m "$M" -p "Once upon a time" -n 12 --temp 0 --print-ids --repack >"$TMP/rp" 2>/dev/null || fail "generate --repack"
cmp -s "$TMP/plain" "$TMP/rp" || fail "--repack changed the output"
printf 'hi\n' | "$BN" chat -m "$M" -n 4 --repack --head q8 --no-mmap >/dev/null 2>&1 || fail "chat --repack --head q8 --no-mmap"
set +e
"$BN" generate -m "$M" -p x -n 1 --head q9 >/dev/null 2>"$TMP/err"; rc=$?
set -e
[ $rc = 2 ] && grep -q "q8, q6 or q4" "$TMP/err" || fail "--head q9: exit $rc"

for cmd in generate logits; do
  case $cmd in
    generate) args=(-p "Once upon a time" -n 12 --temp 0 --print-ids) ;;
    logits) args=(--ids 1,2,3 -o "$TMP/logits.bin") ;;
  esac
  set +e
  "$BN" $cmd -m "$M" "${args[@]}" --device cuda >"$TMP/out" 2>"$TMP/err"; rc=$?
  set -e
  if [ $rc = 0 ]; then
    [ $cmd = generate ] && { cmp -s "$TMP/plain" "$TMP/out" || fail "cuda generate ids differ from cpu"; }
  else
    [ $rc = 1 ] || fail "$cmd --device cuda: exit $rc, want 1"
    grep -qiE "no CUDA backend|no CUDA GPU|CUDA" "$TMP/err" || fail "$cmd --device cuda: no reason given: $(cat "$TMP/err")"
  fi
  set +e
  "$BN" $cmd -m "$M" "${args[@]}" --device gpu >/dev/null 2>"$TMP/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "cpu or cuda" "$TMP/err" || fail "$cmd --device gpu: exit $rc, $(cat "$TMP/err")"
done
set +e
printf 'hi\n' | "$BN" chat -m "$M" --device cuda --cuda no-such-switch >/dev/null 2>"$TMP/err"; rc=$?
set -e
[ $rc = 2 ] && grep -q "unknown --cuda switch" "$TMP/err" || fail "chat --cuda bad switch: exit $rc"
"$BN" logits -m "$M" --ids 1,2,3,4,5,6,7,8 -o "$TMP/l32.bin" >/dev/null 2>&1 || fail "logits (f32 cache)"
"$BN" logits -m "$M" --ids 1,2,3,4,5,6,7,8 -o "$TMP/l16.bin" --kv f16 >/dev/null 2>&1 || fail "logits --kv f16"
cmp -s "$TMP/l32.bin" "$TMP/l16.bin" && fail "--kv f16 gave the f32 cache's logits bit for bit"
python3 - "$TMP/l32.bin" "$TMP/l16.bin" <<'PY' || fail "--kv f16 logits too far from f32"
import struct, sys
a, b = (open(f, 'rb').read() for f in sys.argv[1:])
n = len(a) // 4
x, y = struct.unpack('%df' % n, a), struct.unpack('%df' % n, b)
d = max(abs(p - q) for p, q in zip(x, y)); m = max(abs(p) for p in x)
sys.exit(0 if len(a) == len(b) and d <= 0.02 * m else 1)
PY
set +e
"$BN" generate -m "$M" -p "x" -n 1 --kv f8 >/dev/null 2>"$TMP/err"; rc=$?
set -e
[ $rc = 2 ] && grep -q "f32 or f16" "$TMP/err" || fail "--kv f8: exit $rc, $(cat "$TMP/err")"
echo "device.sh: ok"
