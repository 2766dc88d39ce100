#!/bin/bash
# train_ref.sh — `bitnet train` in the issue's reference form on the
# train-tiny fixture (transformers, float32): the 10 logged losses must match
# train/losses.bin and the saved latent weights params_final/.
set -euo pipefail
BIN=${BN_BITNET:-build/bitnet}
SRC=${BN_SOURCE_DIR:-.}
D=$SRC/tests/data/train-tiny
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$BIN" train --init "$D/model" --batch-file "$D/batch/tokens.bin" --batch 2 --seq 16 --steps 10 \
  --lr 1e-3 --lr-schedule constant --warmup 0 --weight-decay 0.1 --beta1 0.9 --beta2 0.95 \
  --eps 1e-8 --grad-clip 0 --log "$T/run.jsonl" --save "$T/out.safetensors" --quiet --threads 1
python3 - "$D" "$T/run.jsonl" "$T/out.safetensors" <<'PY'
import sys, json, struct, array, math, os
d, log, st = sys.argv[1:4]
def f32(path):
    a = array.array('f'); a.frombytes(open(path, 'rb').read()); return a
ref = f32(os.path.join(d, 'train/losses.bin'))
rows = [json.loads(l) for l in open(log) if l.strip()]
rows = [r for r in rows if 'loss' in r]
assert len(rows) == 10, f"expected 10 log lines, got {len(rows)}"
for k in ('step', 'loss', 'grad_norm', 'lr'):
    assert all(k in r for r in rows), f"log lacks '{k}'"
dl = [abs(r['loss'] - ref[i]) for i, r in enumerate(rows)]
print("losses max |d| = %.2e" % max(dl))
# a transient int8 rounding flip (the fixture's GPU run shows 7.1e-5 at step 3) is allowed
assert dl[0] < 2e-6 and max(dl) < 2e-4, dl
def st_read(path):
    raw = open(path, 'rb').read()
    hl = struct.unpack('<Q', raw[:8])[0]
    return raw, hl, json.loads(raw[8:8 + hl])
def bf16_tensor(path, name):
    raw, hl, hdr = st_read(path)
    b, e = hdr[name]['data_offsets']
    assert hdr[name]['dtype'] == 'BF16'
    h = array.array('H'); h.frombytes(raw[8 + hl + b: 8 + hl + e])
    w = array.array('I', [x << 16 for x in h])
    return array.array('f', w.tobytes())
raw, hl, hdr = st_read(st)
names = [k for k in hdr if k != '__metadata__']
assert len(names) == 24, len(names)
num = den = 0.0; mx = 0.0
for n in names:
    t = hdr[n]
    assert t['dtype'] == 'F32', (n, t['dtype'])
    b, e = t['data_offsets']
    mine = array.array('f'); mine.frombytes(raw[8 + hl + b: 8 + hl + e])
    fin = f32(os.path.join(d, 'params_final', n + '.bin'))
    ini = bf16_tensor(os.path.join(d, 'model/model.safetensors'), n)
    assert len(mine) == len(fin), n
    for x, y, z in zip(mine, fin, ini):
        num += (x - y) ** 2; den += (y - z) ** 2; mx = max(mx, abs(x - y))
rel = math.sqrt(num / den)
print("final params: max |d| = %.2e, rel L2 to the update = %.2e" % (mx, rel))
assert mx < 1e-4 and rel < 1e-3
PY
echo "train_ref: ok"
