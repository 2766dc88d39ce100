#!/usr/bin/env bash
# demo_model.sh — reproduce models/demo.gguf (`make demo-model`) from the
# TinyStories sample in ../shared/data with the recipe recorded in
# models/README.md: a 4096-token BPE vocabulary, token shards, a ternary
# (BitNet b1.58 QAT) model and the fp32 baseline of the same shape and
# recipe, trained side by side on one thread each, then the GGUF with the
# tokenizer embedded and a few samples.
#
# Usage: scripts/demo_model.sh [BUILD_DIR]   (default: build)
# Environment: DATA (default ../shared/data), WORK (default BUILD_DIR/demo-model),
#   OUT (default models/demo.gguf), STEPS (default 480), BASELINE=0 to skip fp32,
#   THREADS (default 1 per run; the recorded run used 1).
# It takes about an hour on two shared CPU cores; CI does not run it.
set -euo pipefail
BUILD=${1:-build}
BN="$BUILD/bitnet"
DATA=${DATA:-../shared/data}
WORK=${WORK:-$BUILD/demo-model}
OUT=${OUT:-models/demo.gguf}
STEPS=${STEPS:-480}
BASELINE=${BASELINE:-1}
THREADS=${THREADS:-1}
CORPUS="$DATA/tinystories_val_sample.txt"

[ -x "$BN" ] || { echo "demo_model: $BN not built (make build first)" >&2; exit 1; }
[ -f "$CORPUS" ] || { echo "demo_model: $CORPUS not found (set DATA=...)" >&2; exit 1; }
mkdir -p "$WORK"

# 1. tokenizer: byte-level BPE, 4096 ids (256 bytes + 3835 merges + 5 specials),
#    learned on the first 90% of the corpus only (data prepare holds out the
#    last 10% of the tokens: the validation text is never seen, not even by
#    the vocabulary).
size=$(wc -c < "$CORPUS")
head -c $((size * 9 / 10)) "$CORPUS" > "$WORK/tokenizer_corpus.txt"
"$BN" tokenizer train -i "$WORK/tokenizer_corpus.txt" --vocab 4096 -o "$WORK/tokenizer.json"

# 2. token shards: train.bin (90%), val.bin (last 10%)
"$BN" data prepare -t "$WORK/tokenizer.json" -i "$CORPUS" -o "$WORK/data"

# 3. training: preset small (hidden 256, 4 layers, 4 heads / 2 KV heads, FFN 640,
#    ReLU², tied embeddings) with the data's 4096 vocabulary = 3.8M parameters.
RECIPE=(--preset small --data "$WORK/data" --batch 8 --seq 256 --steps "$STEPS" --lr 2e-3
        --min-lr 2e-4 --warmup 30 --lr-schedule cosine --eval-every 80 --eval-batches 8
        --threads "$THREADS" --print-every 10 --seed 1)
mkdir -p "$WORK/ternary" "$WORK/fp32"
nice "$BN" train "${RECIPE[@]}" --log "$WORK/ternary/log.jsonl" --save "$WORK/ternary/model/" \
    2> "$WORK/ternary/stderr.txt" &
q=$!
f=
if [ "$BASELINE" != 0 ]; then
  nice "$BN" train "${RECIPE[@]}" --no-quant --log "$WORK/fp32/log.jsonl" --save "$WORK/fp32/model/" \
      2> "$WORK/fp32/stderr.txt" &
  f=$!
fi
wait $q || { echo "demo_model: ternary training failed, see $WORK/ternary/stderr.txt" >&2; exit 1; }
[ -z "$f" ] || wait $f || echo "demo_model: fp32 baseline failed, see $WORK/fp32/stderr.txt" >&2

# held-out loss of the last evaluation of each run
for r in ternary fp32; do
  [ -f "$WORK/$r/log.jsonl" ] || continue
  grep '"val_loss"' "$WORK/$r/log.jsonl" | tail -n 1 | sed "s/^/$r: /"
done

# 4. GGUF: ternary I2_S linears, f16 embeddings, the tokenizer embedded
cp "$WORK/tokenizer.json" "$WORK/ternary/model/tokenizer.json"
mkdir -p "$(dirname "$OUT")"
"$BN" convert "$WORK/ternary/model" "$OUT"
ls -l "$OUT"

# 5. samples
for seed in 1 2 3; do
  echo "--- seed $seed"
  "$BN" generate -m "$OUT" -p "Once upon a time" -n 120 --temp 0.8 --top-p 0.95 --seed $seed -t "$THREADS"
  echo
done
