#!/usr/bin/env bash
# convert_hf.sh — `bitnet convert IN OUT_DIR --to hf-packed|hf-bf16` (issue 7's
# export): tensor bytes against the real HF fixtures, logits against the
# source and transformers' reference, a trained model both ways, refusals.
set -euo pipefail
B=${BN_BITNET:?}; D=tests/data/hf-tiny; T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
IDS=485,225,435,190,266,351,190

cmp_logits() { # got ref rows vocab — SPEC §2 tolerance per row (as model_cli.sh)
python3 - "$@" <<'PY'
import sys, array
got, ref, rows, V = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
g = array.array('f'); g.frombytes(open(got, 'rb').read())
r = array.array('f'); r.frombytes(open(ref, 'rb').read())
assert len(g) == rows * V and len(r) == rows * V, (len(g), len(r), rows * V)
bad = 0; worst = 0.0
for i in range(rows):
    gr, rr = g[i*V:(i+1)*V], r[i*V:(i+1)*V]
    d = [abs(a - b) for a, b in zip(gr, rr)]
    mean, mx, amax = sum(d) / V, max(d), max(abs(x) for x in rr)
    worst = max(worst, mx)
    s = sorted(range(V), key=lambda v: -rr[v]); margin = rr[s[0]] - rr[s[1]]
    ag = max(range(V), key=lambda v: gr[v])
    if mean >= 0.1 or mx >= 0.03 * amax or (margin > 0.5 and ag != s[0]):
        bad += 1; print(f"row {i}: mean {mean:.4f} max {mx:.4f} argmax {ag} vs {s[0]}")
print(f"{got}: {rows} rows, max |diff| {worst:.5f}, {bad} outside tolerance"); sys.exit(1 if bad else 0)
PY
}

# same_tensors A B [names...]: every tensor of A (or the named ones) has the
# same dtype, shape and bytes in B, and both hold the same set of names.
same_tensors() {
python3 - "$@" <<'PY'
import sys, json, struct
def load(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]: 8 + n + v['data_offsets'][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
bad = [k for k in a if a[k] != b[k]]
assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"
print(f"{sys.argv[2]}: {len(a)} tensors byte-identical")
PY
}

expect_fail() { # pattern cmd...
  local pat=$1; shift
  if out=$("$@" 2>&1); then echo "expected failure: $*"; exit 1; fi
  echo "$out" | grep -q -- "$pat" || { echo "message for '$*' lacks '$pat': $out"; exit 1; }
}

# 1. HF packed -> hf-packed: identical tensors, config and logits
mkdir -p "$T/src" && cp $D/packed/* "$T/src/"
printf '{"version": "1.0", "model": {"type": "BPE"}}' > "$T/src/tokenizer.json"
printf '{"bos_token": "<s>"}' > "$T/src/tokenizer_config.json"
"$B" convert "$T/src" "$T/p" --to hf-packed 2> /dev/null
same_tensors $D/packed/model.safetensors "$T/p/model.safetensors"
python3 - $D/packed/config.json "$T/p/config.json" <<'PY'
import sys, json
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a == b, (a, b)
assert list(a) == list(b), "key order differs from microsoft/bitnet-b1.58-2B-4T's"
PY
cmp "$T/src/tokenizer.json" "$T/p/tokenizer.json"
cmp "$T/src/tokenizer_config.json" "$T/p/tokenizer_config.json"
"$B" logits -m $D/packed --ids $IDS -t 2 -o "$T/l_src.bin"
"$B" logits -m "$T/p" --ids $IDS -t 2 -o "$T/l_p.bin"
cmp "$T/l_src.bin" "$T/l_p.bin"
cmp_logits "$T/l_p.bin" $D/ref/logits_seq7_cpu.bin 7 512

# 2. HF bf16 masters -> hf-bf16: identical master bytes, same config;
#    -> hf-packed: transformers' bf16/online logits within tolerance
"$B" convert $D/bf16 "$T/b" --to hf-bf16 2> /dev/null
same_tensors $D/bf16/model.safetensors "$T/b/model.safetensors"
python3 -c "import json,sys; assert json.load(open('$D/bf16/config.json')) == json.load(open('$T/b/config.json'))"
cmp $D/bf16/generation_config.json "$T/b/generation_config.json"
"$B" convert $D/bf16 "$T/bp" --to hf-packed 2> /dev/null
"$B" logits -m "$T/bp" --ids $IDS -t 2 -o "$T/l_bp.bin"
"$B" logits -m $D/bf16 --ids $IDS -t 2 -o "$T/l_b.bin"
cmp "$T/l_b.bin" "$T/l_bp.bin" # same ternary model: F32 weight_scale keeps beta exact
cmp_logits "$T/l_bp.bin" $D/ref/logits_seq7_bf16online_cuda.bin 7 512
# GGUF (I2_S) -> hf-packed: the same ternary model, so the same tensors
"$B" convert $D/packed "$T/tiny.gguf" --to gguf --embd-type bf16 2> /dev/null
"$B" convert "$T/tiny.gguf" "$T/gp" --to hf-packed 2> /dev/null
same_tensors $D/packed/model.safetensors "$T/gp/model.safetensors"

# 3. a trained model (f32 latent masters): both exports load and agree
for i in $(seq 1 120); do echo "line $i: to be, or not to be $((i * 7919 % 1000))"; done > "$T/c.txt"
"$B" data prepare -t bytes -i "$T/c.txt" -o "$T/d" --val-fraction 0.1 > /dev/null
# 30 steps at lr 1e-2 (under a second): a fresh model's logits are nearly
# flat (|logit| < 1.5), where a tolerance relative to the largest logit is moot.
"$B" train --preset tiny --data "$T/d" --batch 4 --seq 32 --steps 30 --lr 1e-2 --quiet --threads 2 --save "$T/tr/" 2> /dev/null
"$B" convert "$T/tr" "$T/trb" --to hf-bf16 2> /dev/null
"$B" convert "$T/tr" "$T/trp" --to hf-packed 2> /dev/null
# hf-bf16 holds exactly the round-to-nearest-even BF16 of every f32 master
python3 - "$T/tr/model.safetensors" "$T/trb/model.safetensors" <<'PY'
import sys, json, struct
def load(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]: 8 + n + v['data_offsets'][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert sorted(a) == sorted(b)
for k, (dt, shape, raw) in a.items():
    assert dt == 'F32' and b[k][0] == 'BF16' and b[k][1] == shape, (k, dt, b[k][:2])
    u = struct.unpack('<%dI' % (len(raw) // 4), raw)
    rne = struct.pack('<%dH' % len(u), *(((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF for x in u))
    assert rne == b[k][2], k
print(f"{sys.argv[2]}: {len(a)} tensors = bf16(masters)")
PY
# hf-packed is a fixed point: exporting the export gives the same tensors
"$B" convert "$T/trp" "$T/trp2" --to hf-packed 2> /dev/null
same_tensors "$T/trp/model.safetensors" "$T/trp2/model.safetensors"
grep -q '"quantization_mode": "online"' "$T/trb/config.json"
grep -q '"quantization_mode": "offline"' "$T/trp/config.json"
TIDS=108,105,110,101,32,49,58,32,116,111
"$B" logits -m "$T/tr" --ids $TIDS -t 2 -o "$T/l_tr.bin"
"$B" logits -m "$T/trb" --ids $TIDS -t 2 -o "$T/l_trb.bin"
"$B" logits -m "$T/trp" --ids $TIDS -t 2 -o "$T/l_trp.bin"
cmp_logits "$T/l_trb.bin" "$T/l_tr.bin" 10 256
cmp_logits "$T/l_trp.bin" "$T/l_tr.bin" 10 256
# and GGUF from the trainer folder, as issue 7 also asks
"$B" convert "$T/tr" "$T/tr.gguf" 2> /dev/null
"$B" logits -m "$T/tr.gguf" --ids $TIDS -t 2 -o "$T/l_trg.bin"
cmp_logits "$T/l_trg.bin" "$T/l_tr.bin" 10 256

# 4. refusals: no masters to export, unknown form, the source folder itself
expect_fail "ternary weights only" "$B" convert "$T/tiny.gguf" "$T/x" --to hf-bf16
expect_fail "ternary weights only" "$B" convert $D/packed "$T/x" --to hf-bf16
test ! -e "$T/x/model.safetensors"
expect_fail "not one of gguf, hf-packed, hf-bf16" "$B" convert $D/packed "$T/x" --to onnx
expect_fail "source folder" "$B" convert "$T/p" "$T/p" --to hf-packed
echo "convert_hf: all passed"
