#!/usr/bin/env bash
# quantize.sh — `bitnet quantize`: the files it writes for the gguf_tq model
# give the same logits as llama.cpp's own TQ1_0/Q6_K file of those weights
# (relabelled bitnet-b1.58, the default name; --arch bitnet warns),
# an HF folder's logits survive TQ1_0 bit for bit, the JSON summary and the
# progress line; bad input (unknown --type/--head, unwritable OUT, a model
# without a loadable head) fails clearly and leaves no OUT (or OUT.tmp).
set -euo pipefail
B=${BN_BITNET:?BN_BITNET not set}
D=tests/data/gguf_tq
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
IDS=510,1,5,77,300,2,511,128
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_fail() { # rc pattern cmd...
  local want=$1 pat=$2 rc=0; shift 2
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $out"
  echo "$out" | grep -q -- "$pat" || fail "message for '$*' lacks '$pat': $out"
  echo "expected error: $(echo "$out" | tail -1)"
}

# --help documents the f16 scale and the architecture per type
"$B" quantize --help > "$T/help"
grep -q "round each" "$T/help" && grep -q 'architecture "bitnet" with a SiLU-gated FFN' "$T/help" \
  && grep -q "Default: bitnet-b1.58" "$T/help" || fail "--help lacks the f16 scale / architecture notes"

# our TQ1_0 + Q6_K file and llama.cpp's give the same logits, bit for bit
"$B" quantize $D/tiny1-i2s.gguf "$T/q.gguf" --type tq1_0 --head q6_k --threads 2 --json > "$T/q.json" 2> "$T/q.err"
grep -q "\[  13/13\] 100%" "$T/q.err" || fail "no progress line: $(cat "$T/q.err")"
python3 - "$T/q.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
want = {"type": "tq1_0", "head": "q6_k", "head_source": "f16", "architecture": "bitnet-b1.58", "tensors": 13,
        "linears": 7, "scales_rounded": 7}
bad = {k: (j.get(k), v) for k, v in want.items() if j.get(k) != v}
assert not bad, bad
assert 0 < j["max_scale_rel_change"] < 2 ** -11 and j["bytes"] > 0, j
print("json summary ok:", j["bytes"], "bytes")
PY
"$B" logits -m "$T/q.gguf" --ids $IDS -t 2 -o "$T/ours.bin"
"$B" logits -m $D/tiny1-tq10-q6k.gguf --ids $IDS -t 2 -o "$T/llama.bin"
cmp "$T/ours.bin" "$T/llama.bin" || fail "logits of our TQ1_0/Q6_K file differ from llama.cpp's"
echo "TQ1_0/Q6_K: logits identical to llama.cpp's file ($(stat -c %s "$T/ours.bin") bytes)"

# --tokenizer: llama.cpp's file's vocabulary; then ours holds the same keys and
# tensors as llama.cpp's TQ2_0 file (same size) and tokenizes alike
"$B" quantize $D/tiny1-i2s.gguf "$T/tk.gguf" --type tq2_0 --tokenizer $D/tiny1-tq20.gguf 2> /dev/null
[ "$(stat -c %s "$T/tk.gguf")" = "$(stat -c %s $D/tiny1-tq20.gguf)" ] || fail "--tokenizer: size differs from llama.cpp's file"
[ "$(echo 'hello world' | "$B" tokenize -m "$T/tk.gguf")" = "$(echo 'hello world' | "$B" tokenize -m $D/tiny1-tq20.gguf)" ] \
  || fail "--tokenizer: tokenization differs"
echo "--tokenizer: $(stat -c %s "$T/tk.gguf") bytes, as llama.cpp's file"

# --arch bitnet on 2B4T weights: written (for llama.cpp) with a warning, and
# the file then means a SiLU FFN here too: other logits than the source's
"$B" quantize $D/tiny1-i2s.gguf "$T/as1bit.gguf" --type tq2_0 --arch bitnet 2> "$T/as1bit.err"
grep -q 'warning: architecture "bitnet" means a SiLU FFN' "$T/as1bit.err" || fail "--arch bitnet: no warning"
"$B" logits -m "$T/as1bit.gguf" --ids $IDS -t 2 -o "$T/as1bit.bin"
"$B" logits -m $D/tiny1-tq20.gguf --ids $IDS -t 2 -o "$T/b158.bin"
! cmp -s "$T/as1bit.bin" "$T/b158.bin" || fail "--arch bitnet: the file still computes the ReLU^2 model"
echo "--arch bitnet: warned, file runs as SiLU"

# a 1bitLLM ("bitnet", SiLU) source with a .scale tensor stays "bitnet"; the
# scale (x0.5, exact) is folded, so I2_S gives its logits bit for bit; a 2B4T
# name for it is refused
python3 $D/gguf_edit.py $D/tiny1-tq20.gguf "$T/silu.gguf" --arch bitnet --add-scale blk.0.ffn_up.scale=0.5
"$B" quantize "$T/silu.gguf" "$T/silu-i2s.gguf" --json 2> /dev/null > "$T/silu.json"
grep -q '"architecture":"bitnet"' "$T/silu.json" || fail "SiLU source: $(cat "$T/silu.json")"
"$B" logits -m "$T/silu.gguf" --ids $IDS -t 2 -o "$T/silu-src.bin"
"$B" logits -m "$T/silu-i2s.gguf" --ids $IDS -t 2 -o "$T/silu-q.bin"
cmp "$T/silu-src.bin" "$T/silu-q.bin" || fail "SiLU source -> I2_S changed the logits"
expect_fail 1 "must be written as architecture 'bitnet'" "$B" quantize "$T/silu.gguf" "$T/x.gguf" --arch bitnet-b1.58
echo "bitnet (SiLU, .scale) -> I2_S: architecture bitnet, logits identical"

# HF packed -> TQ1_0 (BF16 head kept): logits identical to the folder's
"$B" quantize tests/data/hf-tiny/packed "$T/hf.gguf" --type tq1_0 2> /dev/null
"$B" logits -m tests/data/hf-tiny/packed --ids $IDS -t 2 -o "$T/hf-src.bin"
"$B" logits -m "$T/hf.gguf" --ids $IDS -t 2 -o "$T/hf-q.bin"
cmp "$T/hf-src.bin" "$T/hf-q.bin" || fail "HF -> TQ1_0 changed the logits"
echo "HF packed -> TQ1_0: logits identical"

# refusals
expect_fail 2 "--type 'q4_0' is not one of i2_s, tq2_0, tq1_0" "$B" quantize $D/tiny1-i2s.gguf "$T/x.gguf" --type q4_0
expect_fail 2 "--head 'q4_k' is not one of" "$B" quantize $D/tiny1-i2s.gguf "$T/x.gguf" --head q4_k
expect_fail 2 "IN and OUT.gguf are required" "$B" quantize $D/tiny1-i2s.gguf
expect_fail 2 "--arch 'a b' is not an architecture name" "$B" quantize $D/tiny1-i2s.gguf "$T/x.gguf" --arch 'a b' 
expect_fail 1 "cannot create" "$B" quantize $D/tiny1-i2s.gguf "$T/no/dir/x.gguf" --type tq2_0
[ ! -e "$T/x.gguf" ] && [ ! -e "$T/no" ] || fail "a refused run left a file"

# a model without token_embd.weight (no head): the load fails, OUT untouched
python3 - $D/tiny1-i2s.gguf "$T/nohead.gguf" <<'PY'
import struct, sys
sys.path.insert(0, 'tests/data/gguf_tq')
from gguf_edit import R, read_value, write_str, write_value
b = open(sys.argv[1], 'rb').read(); r = R(b); r.take(4); ver = r.u32(); nt, nk = r.u64(), r.u64()
kvs = []
for _ in range(nk):
    k = r.s(); t = r.u32(); kvs.append((k, t, read_value(r, t)))
ts = []
for _ in range(nt):
    n = r.s(); nd = r.u32(); ne = [r.u64() for _ in range(nd)]; tt = r.u32(); off = r.u64(); ts.append([n, ne, tt, off])
d0 = (r.p + 31) // 32 * 32
offs = sorted(x[3] for x in ts) + [len(b) - d0]
blobs = {x[0]: b[d0 + x[3]:d0 + offs[offs.index(x[3]) + 1]] for x in ts}
ts = [x for x in ts if x[0] != 'token_embd.weight']
out = bytearray(b'GGUF') + struct.pack('<IQQ', ver, len(ts), len(kvs))
for k, t, v in kvs:
    write_str(out, k); out += struct.pack('<I', t); write_value(out, t, v)
pos = 0
for x in ts:
    write_str(out, x[0]); out += struct.pack('<I', len(x[1])) + b''.join(struct.pack('<Q', n) for n in x[1])
    out += struct.pack('<IQ', x[2], pos); pos += len(blobs[x[0]])
out += b'\0' * ((-len(out)) % 32)
for x in ts:
    out += blobs[x[0]]
open(sys.argv[2], 'wb').write(out)
PY
echo keep > "$T/keep.gguf"
expect_fail 1 "token_embd.weight is missing" "$B" quantize "$T/nohead.gguf" "$T/keep.gguf" --type tq2_0
[ "$(cat "$T/keep.gguf")" = keep ] && [ ! -e "$T/keep.gguf.tmp" ] || fail "a failed run touched OUT"
echo "quantize.sh: all checks passed"
