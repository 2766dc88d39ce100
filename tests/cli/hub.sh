#!/usr/bin/env bash
# hub.sh — `bitnet pull` and `bitnet models` against tests/hub_server.py on
# loopback: the path printed, the environment honoured (HF_ENDPOINT, HF_HOME,
# HF_TOKEN, HF_HUB_OFFLINE), list/rm, the cache cap and error exit codes.
set -u
BITNET=${BN_BITNET:-build/bitnet}
SRC=${BN_SOURCE_DIR:-.}
TMP=$(mktemp -d /tmp/bn_cli_hub_XXXXXX)
fail=0
check() { if eval "$1"; then :; else echo "FAIL: $1" >&2; fail=1; return 1; fi; }

mkdir -p "$TMP/gguf"
head -c 300000 /dev/urandom > "$TMP/gguf/tiny-i2_s.gguf"
coproc SRV { exec python3 "$SRC/tests/hub_server.py" --repo "test/tiny=$SRC/tests/data/hf-tiny/packed" \
    --repo "test/gguf=$TMP/gguf" --gated test/gguf --token hf_cli; }
SRV_PID=$SRV_PID
trap 'kill $SRV_PID 2>/dev/null; rm -rf "$TMP"' EXIT
read -r _ PORT <&"${SRV[0]}"
export HF_ENDPOINT="http://127.0.0.1:$PORT" HF_HOME="$TMP/home"
unset HF_TOKEN HF_HUB_CACHE HF_HUB_OFFLINE XDG_CACHE_HOME

out=$("$BITNET" pull test/tiny 2>"$TMP/err"); rc=$?
check "[ $rc = 0 ]"
check "[ \"\$out\" = \"\$(ls -d $TMP/home/hub/models--test--tiny/snapshots/*)\" ]"
check "cmp -s \"\$out/model.safetensors\" \"$SRC/tests/data/hf-tiny/packed/model.safetensors\""
check "[ ! -s $TMP/err ]"                    # no progress bar when stderr is not a terminal

# gated: exit 1 and a hint; with the token it works
"$BITNET" pull test/gguf 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q HF_TOKEN $TMP/err"
g=$(HF_TOKEN=hf_cli "$BITNET" pull hf:test/gguf); rc=$?
check "[ $rc = 0 ] && cmp -s \"\$g\" $TMP/gguf/tiny-i2_s.gguf"

# unknown repo: exit 1, says not found
"$BITNET" pull test/none 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q 'not found' $TMP/err"
"$BITNET" pull 2>/dev/null; check "[ $? = 2 ]"

# list: both, with sizes; --json parses
"$BITNET" models list > "$TMP/list"
check "grep -q '^test/tiny ' $TMP/list && grep -q '^test/gguf ' $TMP/list"
"$BITNET" models list --json > "$TMP/list.json"
check "python3 -c 'import json,sys; d=json.load(open(\"$TMP/list.json\")); assert sorted(m[\"repo\"] for m in d)==[\"test/gguf\",\"test/tiny\"]; assert [m[\"size_bytes\"] for m in d if m[\"repo\"]==\"test/gguf\"]==[300000]'"

# offline: served from the cache with the server gone from the endpoint
o2=$(HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$BITNET" pull test/tiny); rc=$?
check "[ $rc = 0 ] && [ \"\$o2\" = \"\$out\" ]"

# end to end: generate -m hf:ORG/NAME downloads into a fresh cache and gives
# transformers' greedy continuation (hf-tiny/ref/gen_tokens_cpu.bin); then again offline
read -r -a REF <<<"$(od -An -v -t d4 "$SRC/tests/data/hf-tiny/ref/gen_tokens_cpu.bin" | tr -s ' \n' ' ')"
PROMPT=$(IFS=,; echo "${REF[*]:0:6}")
WANT="${REF[*]:6:16}"
gen=$(HF_HOME="$TMP/home2" "$BITNET" generate -m hf:test/tiny --ids "$PROMPT" -n 16 --temp 0 --print-ids 2>"$TMP/err"); rc=$?
check "[ $rc = 0 ] && [ \"\$gen\" = \"$WANT\" ]" || cat "$TMP/err" >&2
check "[ -L $TMP/home2/hub/models--test--tiny/snapshots/*/model.safetensors ]"
gen=$(HF_HOME="$TMP/home2" HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$BITNET" generate -m hf:test/tiny@main \
      --ids "$PROMPT" -n 16 --temp 0 --print-ids 2>"$TMP/err"); rc=$?
check "[ $rc = 0 ] && [ \"\$gen\" = \"$WANT\" ]"
HF_HOME="$TMP/home2" "$BITNET" generate -m hf:test/none --ids "$PROMPT" -n 1 2>"$TMP/err"; rc=$?
check "[ $rc != 0 ] && grep -q 'not found' $TMP/err"

# a cap that only the model being pulled fits evicts the other one
touch -d '2001-01-01' "$TMP/home/hub/models--test--gguf/.bitnet_last_used"
"$BITNET" pull test/tiny --max-cache-size 900K >/dev/null; check "[ $? = 0 ]"
check "[ ! -e $TMP/home/hub/models--test--gguf ] && [ -e $TMP/home/hub/models--test--tiny ]"

# rm
"$BITNET" models rm test/tiny 2>/dev/null; check "[ $? = 0 ] && [ ! -e $TMP/home/hub/models--test--tiny ]"
"$BITNET" models rm test/tiny 2>/dev/null; check "[ $? = 1 ]"
check "[ \"\$(\"$BITNET\" models dir)\" = $TMP/home/hub ]"

echo quit >&"${SRV[1]}"
[ $fail = 0 ] && echo "cli hub: ok"
exit $fail
