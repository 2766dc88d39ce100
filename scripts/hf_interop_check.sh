#!/usr/bin/env bash
# hf_interop_check.sh — do bitnet's Hugging Face exports and LoRA adapters load in
# transformers / PEFT and give the same logits? Part 1 (here, needs only bitnet)
# writes the exports, an adapter and bitnet's logits into DIR; part 2 runs
# scripts/hf_interop_check.py where torch + transformers (+ peft) exist.
# usage: scripts/hf_interop_check.sh BUILD DIR    then, on a torch machine:
#        python3 DIR/hf_interop_check.py
set -euo pipefail
B=$1/bitnet; D=$2
root=$(cd "$(dirname "$0")/.." && pwd)
ids=1,17,300,42,99,5,250,7,64,128,33,200
mkdir -p "$D"
"$B" convert "$root/tests/data/hf-tiny/bf16" "$D/tiny-hfbf16" --to hf-bf16
"$B" convert "$root/tests/data/hf-tiny/bf16" "$D/tiny-hfpacked" --to hf-packed
"$B" convert "$root/models/demo.gguf" "$D/demo-hfpacked" --to hf-packed
python3 -c "
import json, random
random.seed(3)
with open('$D/sft.jsonl', 'w') as f:
    for i in range(64): f.write(json.dumps({'text': 'abc ' * random.randint(3, 20)}) + '\n')"
rm -rf "$D/tiny-lora"
"$B" finetune -m "$root/tests/data/hf-tiny/bf16" --data "$D/sft.jsonl" --tokenizer bytes \
    --steps 30 --lr 3e-2 --batch 4 --seq 32 --save "$D/tiny-lora" --quiet
for m in tiny-hfbf16 tiny-hfpacked demo-hfpacked; do
  "$B" logits -m "$D/$m" --ids $ids -o "$D/$m.ours.bin"
done
"$B" logits -m "$root/tests/data/hf-tiny/bf16" --ids $ids -o "$D/tiny-base.ours.bin"
"$B" logits -m "$root/tests/data/hf-tiny/bf16" --ids $ids --lora "$D/tiny-lora" -o "$D/tiny-lora.ours.bin"
cp "$root/scripts/hf_interop_check.py" "$D/"
cp -r "$root/tests/data/hf-tiny/bf16" "$D/tiny-base"
echo "now run: python3 $D/hf_interop_check.py (torch, transformers, peft)"
