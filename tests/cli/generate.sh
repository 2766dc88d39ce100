#!/usr/bin/env bash
# generate.sh — `bitnet generate` and `bitnet perplexity` on hf-tiny against
# transformers' references: greedy --ids continuation equals
# ref/gen_tokens_cpu.bin; perplexity over the 33-token reference sequence
# equals the value computed here from ref/logits_seq33_cpu.bin (within 0.5%);
# --json; seeds; batch mode with broken lines; empty and too-long prompts.
set -u
BN=${BN_BITNET:?BN_BITNET not set}
SRC=${BN_SOURCE_DIR:-.}
DATA="$SRC/tests/data/hf-tiny"
M="$DATA/packed"
TMP=$(mktemp -d /tmp/bn_cli_gen_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { if eval "$1"; then :; else echo "FAIL: $1" >&2; fail=1; fi; }

# reference ids: 6 prompt ids + 16 greedy ids (int32 little-endian)
read -r -a REF <<<"$(od -An -v -t d4 "$DATA/ref/gen_tokens_cpu.bin" | tr -s ' \n' ' ')"
PROMPT=$(IFS=,; echo "${REF[*]:0:6}")
WANT="${REF[*]:6:16}"

# --- greedy continuation, the exact output form
out=$("$BN" generate -m "$M" --ids "$PROMPT" -n 16 --temp 0 --print-ids 2>"$TMP/err"); rc=$?
check "[ $rc = 0 ]"
check "[ \"\$out\" = \"$WANT\" ]"
check "grep -q 'generated 16 tokens' $TMP/err"

# --- --json: one object with the fields
"$BN" generate -m "$M" --ids "$PROMPT" -n 16 --temp 0 --json >"$TMP/out.json" 2>/dev/null; rc=$?
check "[ $rc = 0 ]"
check "python3 - \"$TMP/out.json\" \"$WANT\" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
assert ' '.join(map(str, o['ids'])) == sys.argv[2], o['ids']
assert o['n_prompt'] == 6 and o['n_gen'] == 16 and o['finish_reason'] == 'length'
assert set(o['timings']) >= {'ttft_ms', 'prompt_tokens_per_s', 'gen_tokens_per_s'}
EOF"

# --- the same seed gives the same ids; another seed other ids
a=$("$BN" generate -m "$M" --ids "$PROMPT" -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7 --print-ids 2>/dev/null)
b=$("$BN" generate -m "$M" --ids "$PROMPT" -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7 --print-ids 2>/dev/null)
c=$("$BN" generate -m "$M" --ids "$PROMPT" -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 8 --print-ids 2>/dev/null)
check "[ -n \"$a\" ] && [ \"$a\" = \"$b\" ] && [ \"$a\" != \"$c\" ]"

# --- --logit-bias ID=-inf bans a token: the reference's 4th id (283) never
#     comes, the first three are unchanged
out=$("$BN" generate -m "$M" --ids "$PROMPT" -n 16 --temp 0 --print-ids --logit-bias 283=-inf 2>/dev/null)
check "[ \"\$(echo $out | cut -d' ' -f1-3)\" = \"\$(echo $WANT | cut -d' ' -f1-3)\" ] && ! echo ' $out ' | grep -q ' 283 '"

# --- stop ids via the model's eos are honoured; --ignore-eos keeps going
n=$("$BN" generate -m "$M" --ids "$PROMPT" -n 16 --temp 0 --print-ids --ignore-eos 2>/dev/null | wc -w)
check "[ $n = 16 ]"

# --- perplexity over the 33-token sequence, one window, no BOS replacement
python3 - "$DATA/ref/manifest.json" "$DATA/ref/logits_seq33_cpu.bin" "$TMP/ids.txt" >"$TMP/want_ppl" <<'EOF'
import json, math, struct, sys
ids = json.load(open(sys.argv[1]))["sequences"]["seq33"]["token_ids"]
open(sys.argv[3], "w").write(" ".join(map(str, ids)) + "\n")
raw = open(sys.argv[2], "rb").read()
V = 512
rows = [struct.unpack_from("<%df" % V, raw, 4 * V * t) for t in range(33)]
n_ctx = 33
nll = 0.0
cnt = 0
for j in range(n_ctx // 2, n_ctx - 1):      # llama.cpp: score the second half
    r = rows[j]; m = max(r)
    nll -= r[ids[j + 1]] - m - math.log(sum(math.exp(x - m) for x in r))
    cnt += 1
print(math.exp(nll / cnt))
EOF
out=$("$BN" perplexity -m "$M" --ids-file "$TMP/ids.txt" --ctx 33 --no-bos 2>"$TMP/err"); rc=$?
check "[ $rc = 0 ]"
got=$(echo "$out" | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p')
want=$(cat "$TMP/want_ppl")
check "python3 -c 'import sys; g, w = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(g / w - 1) >= 0.005)' '$got' '$want'"
echo "perplexity: bitnet $got, from the reference logits $want" >&2
check "echo \"\$out\" | grep -q '^\[1\]'"
# fewer tokens than a window: a clear error
"$BN" perplexity -m "$M" --ids-file "$TMP/ids.txt" --ctx 64 >/dev/null 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q 'fewer than one window' $TMP/err"

# --- empty prompt and too-long prompt: clear errors, exit 1
"$BN" generate -m "$M" -p "" >/dev/null 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q 'empty' $TMP/err"
LONG=$(seq -s, 1 40)
"$BN" generate -m "$M" --ids "$LONG" --ctx 16 --temp 0 >/dev/null 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q '40 tokens' $TMP/err && grep -q 'context' $TMP/err"
"$BN" generate -m "$M" -p "hello" >/dev/null 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q 'no tokenizer' $TMP/err"

# --- batch mode: lines decoded together; broken lines reported with their
#     number, the others still run; ids kept in order
OTHER="485, 225, 435, 190, 266, 351, 190"
cat >"$TMP/in.jsonl" <<EOF
{"id": "a", "ids": [$(echo "$PROMPT" | sed 's/,/, /g')], "max_tokens": 16, "temperature": 0}
{"id": "broken", "ids": [1, 2   (no id can be read from a broken line)
{"id": 7, "ids": [$OTHER], "max_tokens": 5, "temperature": 0}

{"id": "text", "prompt": "no tokenizer here"}
{"id": "long", "ids": [$(seq -s, 1 30)], "max_tokens": 2}
{"ids": [$(echo "$PROMPT")], "max_tokens": 3, "temperature": 0, "stop": ["x"]}
EOF
"$BN" generate -m "$M" --file "$TMP/in.jsonl" --out "$TMP/out.jsonl" --ctx 24 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ]"
check "grep -q 'in.jsonl:2:' $TMP/err && grep -q 'in.jsonl:5:' $TMP/err && grep -q 'in.jsonl:6:' $TMP/err"
check "! grep -q 'in.jsonl:1:\|in.jsonl:3:\|in.jsonl:7:' $TMP/err"
# line 3 alone, for the batch-vs-single comparison
single=$("$BN" generate -m "$M" --ids "$(echo "$OTHER" | tr -d ' ')" -n 5 --temp 0 --print-ids 2>/dev/null)
check "python3 - \"$TMP/out.jsonl\" \"$WANT\" \"$single\" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
want = sys.argv[2].split()
assert [l.get('id') for l in lines] == ['a', None, 7, 'text', 'long', None], [l.get('id') for l in lines]
assert [str(i) for i in lines[0]['ids']] == want and lines[0]['finish_reason'] == 'length'
assert lines[1]['error']['line'] == 2 and 'JSON' in lines[1]['error']['message']
assert ' '.join(map(str, lines[2]['ids'])) == sys.argv[3] and lines[2]['n_prompt'] == 7
assert lines[3]['error']['line'] == 5 and 'tokenizer' in lines[3]['error']['message']
assert lines[4]['error']['line'] == 6 and '30 tokens' in lines[4]['error']['message']
assert [str(i) for i in lines[5]['ids']] == want[:3]
EOF"

# --- with a tokenizer (the 259-token chatml test vocabulary fits hf-tiny):
#     text prompts and chat messages in batch mode equal single runs
TOK="$SRC/tests/data/tokenizer/chatml"
cat >"$TMP/in2.jsonl" <<'EOF'
{"id": 1, "prompt": "hello ab", "max_tokens": 6, "temperature": 0}
{"id": 2, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "temperature": 0}
{"id": 3, "prompt": "", "max_tokens": 6}
EOF
"$BN" generate -m "$M" --tokenizer "$TOK" --chat-template chatml --file "$TMP/in2.jsonl" --out "$TMP/out2.jsonl" 2>"$TMP/err"; rc=$?
check "[ $rc = 1 ] && grep -q 'in2.jsonl:3: the prompt is empty' $TMP/err"
"$BN" generate -m "$M" --tokenizer "$TOK" -p "hello ab" -n 6 --temp 0 --json >"$TMP/p1.json" 2>/dev/null
"$BN" generate -m "$M" --tokenizer "$TOK" --chat --chat-template chatml -p hello -n 8 --temp 0 --json >"$TMP/p2.json" 2>/dev/null
check "python3 - $TMP/out2.jsonl $TMP/p1.json $TMP/p2.json <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for got, want in ((lines[0], json.load(open(sys.argv[2]))), (lines[1], json.load(open(sys.argv[3])))):
    assert got['ids'] == want['ids'] and got['text'] == want['text'] and got['n_prompt'] == want['n_prompt'], (got, want)
assert lines[2]['id'] == 3 and 'empty' in lines[2]['error']['message']
EOF"

# --- perplexity of a text file equals that of its ids (tokenized the same
#     way; BOS comes from the tokenizer, which has none here)
printf 'hello ab hello ab abab hello world, hello ab!\n%.0s' 1 2 3 >"$TMP/text.txt"
"$BN" tokenize --tokenizer "$TOK" <"$TMP/text.txt" >"$TMP/text.ids"
a=$("$BN" perplexity -m "$M" --tokenizer "$TOK" -f "$TMP/text.txt" --ctx 32 2>/dev/null | grep '^Final')
b=$("$BN" perplexity -m "$M" --tokenizer "$TOK" --ids-file "$TMP/text.ids" --ctx 32 2>/dev/null | grep '^Final')
check "[ -n \"$a\" ] && [ \"$a\" = \"$b\" ]"

exit $fail
