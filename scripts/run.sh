#!/usr/bin/env bash
# run.sh — the main job of `make run`: generate a short story with the shipped
# demo model; without one, inspect a sample model the build makes.
set -euo pipefail
BUILD=${1:-build}
BITNET="$BUILD/bitnet"
DEMO=models/demo.gguf
if [ -f "$DEMO" ] && "$BITNET" help | grep -q "^  generate"; then
  PROMPT="Once upon a time"
  printf '%s' "$PROMPT"   # generate streams only the continuation
  exec "$BITNET" generate -m "$DEMO" -p "$PROMPT" -n 200 --temp 0.8 --top-p 0.95 --seed 42
fi
SAMPLE="$BUILD/sample-tiny.gguf"
[ -f "$SAMPLE" ] || "$BITNET" random-model --shape tiny -o "$SAMPLE" --seed 1
"$BITNET" info "$SAMPLE"
