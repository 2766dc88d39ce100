#!/usr/bin/env bash
# chat.sh — `bitnet chat` with stdin not a terminal (one message per line):
# the first reply equals `generate --chat`; the KV cache is kept across turns
# (each turn decodes only its new tokens: reused = everything before);
# /reset starts over; /quit ends; SIGINT stops a reply without quitting.
# Model: hf-tiny; tokenizer: the 259-token chatml test vocabulary (its ids
# fit hf-tiny's 512).
set -u
BN=${BN_BITNET:?BN_BITNET not set}
SRC=${BN_SOURCE_DIR:-.}
M="$SRC/tests/data/hf-tiny/packed"
TOK="$SRC/tests/data/tokenizer/chatml"
TMP=$(mktemp -d /tmp/bn_cli_chat_XXXXXX)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT
fail=0
check() { if eval "$1"; then :; else echo "FAIL: $1" >&2; fail=1; fi; }
CHAT=("$BN" chat -m "$M" --tokenizer "$TOK" --chat-template chatml --temp 0 -n 8 -v)

# --- turns, reuse, /reset, /quit
printf 'hello\nsecond message\nthird\n/reset\nhello\n/quit\nnever read\n' | "${CHAT[@]}" >"$TMP/out" 2>"$TMP/err"; rc=$?
check "[ $rc = 0 ]"
check "[ \$(grep -c '^\[reused' $TMP/err) = 4 ]"
# reused(k+1) = reused(k) + decoded(k) + generated(k) - 1 (the last sampled
# token is decoded with the next turn); 0 after /reset
check "python3 - $TMP/err <<'EOF'
import re, sys
t = [tuple(map(int, m.groups())) for m in re.finditer(r'reused (\d+) cached tokens, decoded (\d+); (\d+) tokens', open(sys.argv[1]).read())]
assert len(t) == 4, t
assert t[0][0] == 0 and t[3][0] == 0, t
for k in (0, 1):
    assert t[k + 1][0] == t[k][0] + t[k][1] + t[k][2] - 1, t
    assert t[k + 1][1] < 40, t   # only the new turn, not the history
assert t[3][1] == t[0][1], t    # after /reset the first turn again
EOF"

# --- the first reply is what generate --chat gives; the same after /reset
"$BN" generate -m "$M" --tokenizer "$TOK" --chat --chat-template chatml -p hello -n 8 --temp 0 >"$TMP/gen" 2>/dev/null
n=$(wc -c <"$TMP/gen")
check "[ $n -gt 1 ] && cmp -s -n $n $TMP/gen $TMP/out"

# --- SIGINT stops the current reply; the chat goes on to the next message
mkfifo "$TMP/in"
"$BN" chat -m "$M" --tokenizer "$TOK" --chat-template chatml --temp 0 -n -1 --ctx 16384 -v <"$TMP/in" >"$TMP/out2" 2>"$TMP/err2" &
PID=$!
exec 3>"$TMP/in"
# wait until the reply streams (its size grows), then Ctrl-C it
wait_growth() { local n0=$1 k; for k in $(seq 300); do [ "$(wc -c <"$TMP/out2")" -gt "$n0" ] && return 0; sleep 0.1; done; return 1; }
echo "tell me everything" >&3
wait_growth 0; check "[ $? = 0 ]"
kill -INT $PID
# the next message gets a reply of its own (stopped the same way: it would
# run to the end of the 16384-position context)
for k in $(seq 100); do grep -q '^\[reused' "$TMP/err2" && break; sleep 0.1; done
n1=$(wc -c <"$TMP/out2")
echo "hello" >&3
wait_growth "$n1"; check "[ $? = 0 ]"
kill -INT $PID
echo "/quit" >&3
exec 3>&-
for k in $(seq 300); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
kill -9 $PID 2>/dev/null && echo "FAIL: chat did not exit after /quit" >&2
wait $PID; rc=$?
PID=
check "[ $rc = 0 ]"
check "[ \$(grep -c 'cancelled\]' $TMP/err2) = 2 ]"

# --- no tokenizer: a clear error
"$BN" chat -m "$M" </dev/null >/dev/null 2>"$TMP/err3"; rc=$?
check "[ $rc = 1 ] && grep -q 'no tokenizer' $TMP/err3"

exit $fail
