#!/bin/bash
# train_resume.sh — `bitnet data prepare` + `bitnet train --data`: 2N steps in
# one run must equal N steps, a checkpoint, and --resume for the other N, bit
# for bit (losses, grad norms, eval losses, final weights), with gradient
# accumulation, clipping, a cosine schedule, eval and samples switched on.
set -euo pipefail
BIN=${BN_BITNET:-build/bitnet}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for i in $(seq 1 400); do echo "line $i: to be, or not to be, that is the question $((i * 7919 % 1000))"; done > "$T/corpus.txt"
"$BIN" data prepare -t bytes -i "$T/corpus.txt" -o "$T/d" --val-fraction 0.1 > /dev/null
python3 - "$T/d" <<'PY'
import sys, struct, json
d = sys.argv[1]
for split in ('train', 'val'):
    raw = open(f'{d}/{split}.bin', 'rb').read()
    magic, ver, width, count, vocab, _ = struct.unpack('<8sIIQII', raw[:32])
    assert magic == b'BNTOK\0\0\0' and ver == 1 and width == 2 and vocab == 256, (magic, ver, width, vocab)
    assert len(raw) == 32 + 2 * count, split
meta = json.load(open(f'{d}/meta.json'))
assert meta['tokenizer'] == 'bytes'
tot = meta['train_tokens'] + meta['val_tokens']
assert meta['val_tokens'] == tot - int(tot * 0.9)
PY
# with the project tokenizer: uint32 ids, documents of a .jsonl separated by EOS
TOK=tests/data/tokenizer/llama3.tiktoken
if [ -f "${BN_SOURCE_DIR:-.}/$TOK" ]; then
  printf '{"text": "hello world"}\n\n{"text": "second doc"}\n' > "$T/s.jsonl"
  "$BIN" data prepare -t "${BN_SOURCE_DIR:-.}/$TOK" -i "$T/s.jsonl" -o "$T/tk" --val-fraction 0 > /dev/null
  python3 - "$T/tk/train.bin" <<'PY'
import sys, struct
raw = open(sys.argv[1], 'rb').read()
magic, ver, width, count, vocab, _ = struct.unpack('<8sIIQII', raw[:32])
ids = struct.unpack('<%dI' % count, raw[32:])
# tiktoken (LLaMA 3): "hello world" = 15339 1917, "second doc" = 5686 4733, EOS 128001
assert width == 4 and vocab == 128256 and ids == (15339, 1917, 128001, 5686, 4733, 128001), ids
PY
fi
COMMON=(--preset tiny --data "$T/d" --batch 2 --seq 32 --accum 2 --steps 8 --lr 3e-3
        --lr-schedule cosine --warmup 2 --grad-clip 0.5 --eval-every 2 --eval-batches 2
        --sample-every 4 --sample-len 8 --seed 5 --threads 1 --quiet)
"$BIN" train "${COMMON[@]}" --log "$T/a.jsonl" --save "$T/a.safetensors" 2> /dev/null
"$BIN" train "${COMMON[@]}" --log "$T/b.jsonl" --stop-at 4 --ckpt "$T/ck" 2> /dev/null
test -f "$T/ck"
"$BIN" train "${COMMON[@]}" --log "$T/b.jsonl" --resume "$T/ck" --save "$T/b.safetensors" 2> /dev/null
python3 - "$T/a.jsonl" "$T/b.jsonl" <<'PY'
import sys, json
def rows(p):
    return [json.loads(l) for l in open(p) if l.strip() and '"summary"' not in l]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == 8 and len(b) == 8, (len(a), len(b))
for x, y in zip(a, b):
    for k in ('step', 'loss', 'grad_norm', 'lr', 'val_loss', 'tokens'):
        assert x.get(k) == y.get(k), (k, x, y)
assert a[-1]['loss'] < a[0]['loss'], 'no learning'
print('resume: 8 steps == 4 + resume + 4, bit for bit; losses', a[0]['loss'], '->', a[-1]['loss'])
PY
cmp "$T/a.safetensors" "$T/b.safetensors"
# a saved folder (model.safetensors + config.json) is a valid --init
"$BIN" train --preset tiny --data "$T/d" --batch 1 --seq 16 --steps 1 --quiet --threads 1 --save "$T/f/"
test -f "$T/f/model.safetensors" && test -f "$T/f/config.json"
"$BIN" train --init "$T/f" --data "$T/d" --batch 1 --seq 16 --steps 1 --quiet --threads 1 --save "$T/g.safetensors"
test -f "$T/g.safetensors"
echo "train_resume: ok"
