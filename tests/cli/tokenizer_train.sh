#!/bin/bash
# tokenizer_train.sh — `bitnet tokenizer train`: the file it writes loads in
# `bitnet tokenize` / `detokenize` (round trip of the corpus, special-token
# ids after the merges), and bad input fails with a clear message: an
# unreadable or empty corpus, a vocabulary too small for the bytes and the
# specials, missing or unknown options.
set -uo pipefail
BIN=${BN_BITNET:-build/bitnet}
SRC=${BN_SOURCE_DIR:-.}
C=$SRC/tests/data/tokenizer_train/shakespeare_oneline.txt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
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
check() { if eval "$1"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

# 1. train, then the CLI's own tokenizer reads the result back
"$BIN" tokenizer train -i "$C" --vocab 512 -o "$T/tok.json" 2> "$T/log"
check "[ $? = 0 ]"
check "grep -q '512 tokens (256 bytes + 251 merges + 5 special)' $T/log"
"$BIN" tokenize --tokenizer "$T/tok.json" < "$C" > "$T/ids"
check "[ \$(wc -w < $T/ids) -lt \$(( \$(wc -c < $C) / 2 )) ]"   # fewer than half as many tokens as bytes
"$BIN" detokenize --tokenizer "$T/tok.json" < "$T/ids" > "$T/back"
check "cmp -s $C $T/back"
check "[ \"\$(printf '<|eot_id|>' | $BIN tokenize --tokenizer $T/tok.json --special | tr -d ' ')\" = 509 ]"   # 256 + 251 + 2
# chosen specials, in order, after the merges
"$BIN" tokenizer train -i "$C" --vocab 300 --special '<|a|>,<|b|>' -o "$T/sp.json" 2> /dev/null
check "grep -q '\"id\":	298,' $T/sp.json && grep -q '\"content\":	\"<|b|>\"' $T/sp.json"
# 2. bad input
expect_fail "cannot open\|No such file\|not found" "$BIN" tokenizer train -i "$T/missing.txt" --vocab 512 -o "$T/x.json"
: > "$T/empty.txt"
expect_fail "empty" "$BIN" tokenizer train -i "$T/empty.txt" --vocab 512 -o "$T/x.json"
expect_fail "at least 261" "$BIN" tokenizer train -i "$C" --vocab 260 -o "$T/x.json"
expect_fail "twice" "$BIN" tokenizer train -i "$C" --vocab 512 --special 'a,a' -o "$T/x.json"
expect_fail "vocab" "$BIN" tokenizer train -i "$C" -o "$T/x.json"
expect_fail "unknown" "$BIN" tokenizer train -i "$C" --vocab 512 -o "$T/x.json" --bogus
expect_fail "unknown sub-command" "$BIN" tokenizer frobnicate
expect_fail "cannot create" "$BIN" tokenizer train -i "$C" --vocab 512 -o "$T/no/such/dir/x.json"
check "[ ! -e $T/x.json ]"
echo "$fails failed"
[ $fails -eq 0 ]
