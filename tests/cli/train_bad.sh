#!/bin/bash
# train_bad.sh — `bitnet train` / `bitnet data` on bad input: every case must
# fail with a clear message (and no crash): inconsistent config, weights that
# disagree with the config, empty and too-short corpora, a checkpoint of
# another shape, and a NaN loss (which must keep the last good checkpoint).
set -uo pipefail
BIN=${BN_BITNET:-build/bitnet}
SRC=${BN_SOURCE_DIR:-.}
D=$SRC/tests/data/train-tiny
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
# expect_fail "<grep pattern>" cmd...: non-zero exit (not a crash) and the pattern on stderr
expect_fail() {
  local pat=$1; shift
  "$@" > "$T/out" 2> "$T/err"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -q -- "$pat" "$T/err"; then
    echo "FAIL (rc $rc): $* -- expected /$pat/ in:"; cat "$T/err"; fails=$((fails + 1))
  else
    echo "ok: $(head -c 200 "$T/err" | tr '\n' ' ')"
  fi
}
printf 'some text for training, long enough for a few windows of sixteen bytes.\n%.0s' $(seq 1 20) > "$T/c.txt"
"$BIN" data prepare -t bytes -i "$T/c.txt" -o "$T/d" > /dev/null || { echo "prepare failed"; exit 1; }

# 1. config whose shapes do not fit together (heads x head_dim != hidden_size)
sed 's/"hidden_size": 64,/"hidden_size": 64, "head_dim": 32,/' "$D/model/config.json" > "$T/bad.json"
expect_fail "hidden_size" "$BIN" train --config "$T/bad.json" --data "$T/d" --batch 1 --seq 8 --steps 1
# 2. weights that disagree with their config
mkdir -p "$T/m"; cp "$D/model/model.safetensors" "$T/m/"
sed 's/"intermediate_size": 128/"intermediate_size": 96/' "$D/model/config.json" > "$T/m/config.json"
expect_fail "the config needs" "$BIN" train --init "$T/m" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 16 --steps 1
# 3. batch file of the wrong size
expect_fail "needs int32" "$BIN" train --init "$D/model" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 8 --steps 1
# 4. empty corpus; corpus too short for one window
: > "$T/empty.txt"
expect_fail "empty" "$BIN" data prepare -t bytes -i "$T/empty.txt" -o "$T/e"
printf 'tiny' > "$T/short.txt"
"$BIN" data prepare -t bytes -i "$T/short.txt" -o "$T/s" --val-fraction 0 > /dev/null
expect_fail "too short" "$BIN" train --preset tiny --data "$T/s" --batch 1 --seq 16 --steps 1
printf '{"text": "ok"}\nnot json\n' > "$T/bad.jsonl"
expect_fail "bad.jsonl:2" "$BIN" data prepare -t bytes -i "$T/bad.jsonl" -o "$T/j"
# 5. a checkpoint resumed into another shape
"$BIN" train --preset tiny --data "$T/d" --batch 1 --seq 16 --steps 2 --ckpt "$T/ck" --quiet 2> /dev/null
sed 's/"intermediate_size": 128/"intermediate_size": 96/' "$D/model/config.json" > "$T/other.json"
expect_fail "differs from the model" "$BIN" train --config "$T/other.json" --resume "$T/ck" --data "$T/d" --batch 1 --seq 16 --steps 4
head -c 1000 "$T/ck" > "$T/trunc"
expect_fail "does not match" "$BIN" train --resume "$T/trunc" --data "$T/d" --batch 1 --seq 16 --steps 4
# 6. NaN loss (injected at step 4, as a diverging run would produce): training
#    stops with a message and the last good checkpoint (step 3) stays loadable
expect_fail "last good checkpoint is .*step 3" "$BIN" train --init "$D/model" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 16 --steps 20 --ckpt "$T/nan.ck" --ckpt-every 1 --inject-nan-at 4
grep -E -q "NaN|infinite" "$T/err" || { echo "FAIL: no NaN/inf in message"; fails=$((fails + 1)); }
"$BIN" train --resume "$T/nan.ck" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 16 --steps 5 --quiet --log "$T/nan.jsonl" 2> "$T/err2" \
  || { echo "FAIL: the last good checkpoint does not resume"; cat "$T/err2"; fails=$((fails + 1)); }
grep -q '"step":4,' "$T/nan.jsonl" || { echo "FAIL: resume did not continue at step 4"; fails=$((fails + 1)); }
# 7. a huge learning rate overflows the weights in the first update: no checkpoint is written
expect_fail "Inf/NaN" "$BIN" train --init "$D/model" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 16 --steps 5 --lr 1e38 --ckpt "$T/inf.ck" --ckpt-every 1
test ! -e "$T/inf.ck" || { echo "FAIL: a checkpoint with Inf weights was written"; fails=$((fails + 1)); }
cat "$T/err" "$T/err2" | tail -n 4
[ $fails -eq 0 ] && echo "train_bad: ok"
exit $fails
