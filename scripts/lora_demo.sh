#!/usr/bin/env bash
# lora_demo.sh — the LoRA demo of docs/TRAINING.md (Fine-tuning): a small
# "answer in a fixed format" task (scripts/lora_demo_data.py) on which the base
# fails, a LoRA fine-tune, and the scores of base, base + adapter and the
# merged model, through `bitnet generate` (greedy) on 60 held-out prompts.
# Usage: [EXTRA=--merge-aware] scripts/lora_demo.sh BASE_HF_FOLDER [BUILD_DIR] [WORK]
# BASE: an HF folder with latent masters and its tokenizer.json (the demo
# model's run, e.g. build/demo-model/ternary/model + tokenizer.json).
set -euo pipefail
BASE=$1
BUILD=${2:-build}
WORK=${3:-$BUILD/lora-demo}
BN="$BUILD/bitnet"
STEPS=${STEPS:-300}
RANK=${RANK:-16}
TEMPLATE=${TEMPLATE:-llama3}
EXTRA=${EXTRA:-}   # e.g. EXTRA=--merge-aware
mkdir -p "$WORK"
python3 "$(dirname "$0")/lora_demo_data.py" "$WORK"
nice -n 10 "$BN" finetune -m "$BASE" --template "$TEMPLATE" --data "$WORK/train.jsonl" \
    --eval "$WORK/eval.jsonl" --steps "$STEPS" --batch 8 --seq 48 --lr 5e-3 --lr-schedule cosine \
    --warmup 20 --lora-rank "$RANK" $EXTRA --save "$WORK/adapter" --log "$WORK/log.jsonl" --threads 1
nice -n 10 "$BN" finetune -m "$BASE" --lora "$WORK/adapter" --steps 0 --merge --save "$WORK/merged" --quiet
score() {  # greedy replies of `bitnet generate --file` vs the expected ones
  nice -n 10 "$BN" generate "$@" --chat-template "$TEMPLATE" --file "$WORK/eval_prompts.jsonl" -t 1 2> /dev/null |
    python3 -c '
import json, sys
exp = [json.loads(l)["expected"] for l in open(sys.argv[1])]
got = [json.loads(l)["text"].strip() for l in sys.stdin]
fmt = sum(g.startswith("It was ") for g in got)
ok = sum(g == e for g, e in zip(got, exp))
print(f"exact {ok}/{len(exp)}, format {fmt}/{len(exp)}, e.g. {got[0]!r}")' "$WORK/eval_prompts.jsonl"
}
echo "base:           $(score -m "$BASE")"
echo "base + adapter: $(score -m "$BASE" --lora "$WORK/adapter")"
echo "merged:         $(score -m "$WORK/merged")"
# logits of base + adapter vs the merged (re-quantized) model on 10 held-out chats,
# every position, with SPEC §2's per-position criteria
python3 - "$BN" "$BASE" "$WORK" "$TEMPLATE" <<'PY'
import array, json, subprocess, sys
bn, base, work, tmpl = sys.argv[1:5]
assert tmpl == "llama3"
rows = [json.loads(l) for l in open(f"{work}/eval.jsonl")][:10]
worst_mean = worst_rel = 0.0; flips = 0; npos = 0
def logits(model, ids, extra):
    subprocess.run([bn, "logits", "-m", model, "--ids", ",".join(map(str, ids)), "-o", f"{work}/l.bin", "-t", "1"] + extra, check=True)
    a = array.array("f"); a.frombytes(open(f"{work}/l.bin", "rb").read()); return a
for r in rows:
    m = r["messages"]
    text = "<|begin_of_text|>" + "".join(f"<|start_header_id|>{x['role']}<|end_header_id|>\n\n{x['content']}<|eot_id|>" for x in m)
    ids = [int(t) for t in subprocess.run([bn, "tokenize", "--tokenizer", f"{base}/tokenizer.json", "--special"], input=text.encode(), capture_output=True, check=True).stdout.split()]
    a = logits(base, ids, ["--lora", f"{work}/adapter"]); b = logits(f"{work}/merged", ids, [])
    V = len(a) // len(ids)
    for i in range(len(ids)):
        ra, rb = a[i * V:(i + 1) * V], b[i * V:(i + 1) * V]
        d = [abs(x - y) for x, y in zip(ra, rb)]
        worst_mean = max(worst_mean, sum(d) / V); worst_rel = max(worst_rel, max(d) / max(abs(x) for x in ra))
        s = sorted(range(V), key=lambda v: -ra[v])[:2]
        if ra[s[0]] - ra[s[1]] > 0.5 and max(range(V), key=lambda v: rb[v]) != s[0]: flips += 1
        npos += 1
print(f"merged vs base+adapter, {npos} positions: worst mean|d| {worst_mean:.3f}, "
      f"worst max|d|/max|logit| {worst_rel:.3f}, argmax flips (margin > 0.5) {flips}")
PY
