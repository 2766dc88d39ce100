#!/bin/bash
# finetune.sh — `bitnet finetune` end to end on the train-tiny base (byte
# vocabulary): a LoRA run lowers the loss on the replies, the adapter loads in
# `bitnet logits --lora` and changes the logits, --merge writes a model the
# engine loads (HF folder and GGUF), full fine-tuning with --freeze leaves the
# frozen tensors bit-identical; bad input fails with a clear message.
set -uo pipefail
BIN=${BN_BITNET:-build/bitnet}
SRC=${BN_SOURCE_DIR:-.}
BASE=$SRC/tests/data/train-tiny/model
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
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

# training data: 24 chats whose replies follow a fixed format
for i in $(seq 1 24); do
  a=$((i % 7)); b=$((i % 5))
  printf '{"messages": [{"role": "user", "content": "%d+%d"}, {"role": "assistant", "content": "ANSWER: %d"}]}\n' $a $b $((a + b))
done > "$T/train.jsonl"
echo '{"text": "plain text lines are learned whole"}' >> "$T/train.jsonl"

# 1. LoRA: the loss on the replies falls
"$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --lora-rank 4 --lora-targets q,v,o,down \
    --steps 30 --batch 4 --seq 96 --lr 1e-2 --log "$T/log.jsonl" --save "$T/ad" --threads 1 \
    2> "$T/ft.err" || { cat "$T/ft.err"; fail "finetune"; }
[ -f "$T/ad/adapter_model.safetensors" ] && [ -f "$T/ad/adapter_config.json" ] || fail "adapter files"
grep -q '"peft_type":[[:space:]]*"LORA"' "$T/ad/adapter_config.json" || fail "peft_type"
grep -q '"o_proj"' "$T/ad/adapter_config.json" || fail "target_modules"
# PEFT (0.21) refuses a string here: LoraConfig takes true/false or a method name
grep -q '"init_lora_weights":[[:space:]]*true' "$T/ad/adapter_config.json" || fail "init_lora_weights must be the JSON boolean true"
first=$(head -n 3 "$T/log.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/' | awk '{s+=$1} END {print s/NR}')
last=$(tail -n 3 "$T/log.jsonl" | sed 's/.*"loss": \([0-9.]*\).*/\1/' | awk '{s+=$1} END {print s/NR}')
echo "reply loss: first steps $first, last steps $last"
awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < a * 0.5)}' || fail "loss did not halve ($first -> $last)"

# 2. the adapter at inference: logits change, and --lora is accepted by generate
IDS=60,105,109,95,115,116,97,114,116,62,117,115,101,114,10,50,43,51
"$BIN" logits -m "$BASE" --ids $IDS -o "$T/base.bin" -t 1 || fail "logits base"
"$BIN" logits -m "$BASE" --lora "$T/ad" --ids $IDS -o "$T/lora.bin" -t 1 || fail "logits --lora"
cmp -s "$T/base.bin" "$T/lora.bin" && fail "the adapter changed nothing"
"$BIN" generate -m "$BASE" --lora "$T/ad" --ids $IDS -n 4 --print-ids -t 1 > "$T/gen.txt" 2>&1 || { cat "$T/gen.txt"; fail "generate --lora"; }

# 3. merge (no training: --steps 0 --lora) into an HF folder and a GGUF
"$BIN" finetune -m "$BASE" --lora "$T/ad" --steps 0 --merge --save "$T/merged" --quiet || fail "merge to folder"
"$BIN" logits -m "$T/merged" --ids $IDS -o "$T/merged.bin" -t 1 || fail "logits merged"
"$BIN" finetune -m "$BASE" --lora "$T/ad" --steps 0 --merge --save "$T/merged.gguf" --quiet || fail "merge to gguf"
"$BIN" logits -m "$T/merged.gguf" --ids $IDS -o "$T/merged_gguf.bin" -t 1 || fail "logits merged gguf"
cmp -s "$T/merged.bin" "$T/merged_gguf.bin" || fail "merged folder and merged GGUF differ"

# 3b. a GGUF base (ternary weights * scale) and merge-aware training
"$BIN" finetune -m "$T/merged.gguf" --data "$T/train.jsonl" --steps 2 --batch 2 --seq 96 --save "$T/ad2" 2> "$T/g.err" \
    || { cat "$T/g.err"; fail "finetune on a GGUF base"; }
grep -q "ternary weights \* scale" "$T/g.err" || fail "GGUF base not taken as ternary"
"$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --merge-aware --steps 2 --batch 2 --seq 96 --merge \
    --save "$T/ma" --adapter-out "$T/ma_ad" --quiet || fail "merge-aware"
grep -q '"bitnet_merge_aware"' "$T/ma_ad/adapter_config.json" || fail "merge-aware flag in adapter_config.json"

# 4. full fine-tuning with frozen MLPs: those tensors stay bit-identical
"$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --freeze 'model.layers.*.mlp.*' \
    --freeze 'model.embed_tokens.*' --steps 3 --batch 2 --seq 96 --save "$T/full" --quiet || fail "full finetune"
if command -v python3 > /dev/null; then
  python3 - "$BASE/model.safetensors" "$T/full/model.safetensors" <<'PY' || fail "frozen tensors changed"
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']; raw = b[8 + n + s:8 + n + e]
        if v['dtype'] == 'BF16':  # widen to f32 bit patterns
            raw = b''.join(b'\0\0' + raw[i:i + 2] for i in range(0, len(raw), 2))
        out[k] = raw
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
frozen = [k for k in a if '.mlp.' in k or 'embed_tokens' in k]
trained = [k for k in a if k not in frozen and k.endswith('proj.weight')]
bad = [k for k in frozen if a[k] != b[k]]
moved = [k for k in trained if a[k] != b[k]]
print(f"frozen identical: {len(frozen) - len(bad)}/{len(frozen)}, trained and changed: {len(moved)}/{len(trained)}")
sys.exit(1 if bad or not moved else 0)
PY
fi

# 5. bad input
printf '{"text": "fine"}\n{"prompt": "no text or messages"}\n' > "$T/bad.jsonl"
expect_fail "bad.jsonl:2:" "$BIN" finetune -m "$BASE" --data "$T/bad.jsonl" --steps 1
expect_fail "larger than the k_proj layer" "$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --lora-rank 40 --steps 1
expect_fail "unknown LoRA target 'qkv'" "$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --lora-targets q,qkv --steps 1
expect_fail "are for adapters" "$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --full --merge-aware --steps 1
expect_fail "matches no tensor" "$BIN" finetune -m "$BASE" --data "$T/train.jsonl" --freeze 'model.layers.*.attention.*' --steps 1
# an adapter for another base (hidden 32)
mkdir -p "$T/other"
sed 's/"hidden_size": 64/"hidden_size": 32/; s/"num_attention_heads": 4/"num_attention_heads": 2/' "$BASE/config.json" > "$T/other.json"
"$BIN" train --config "$T/other.json" --batch-file "$SRC/tests/data/train-tiny/batch/tokens.bin" --batch 2 --seq 16 \
    --steps 1 --save "$T/other/" --quiet 2> /dev/null || fail "other base"
"$BIN" finetune -m "$T/other" --steps 0 --lora-rank 4 --save "$T/other_ad" --quiet || fail "other adapter"
expect_fail "another base" "$BIN" logits -m "$BASE" --lora "$T/other_ad" --ids 1,2,3 -o "$T/x.bin"
expect_fail "another base" "$BIN" finetune -m "$BASE" --lora "$T/other_ad" --steps 0 --merge --save "$T/y"

[ $fails -eq 0 ] && echo "finetune.sh: all passed" || echo "finetune.sh: $fails failed"
exit $((fails > 0))
