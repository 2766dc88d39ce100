#!/usr/bin/env bash
# tokenizer_bench.sh — libbitnet's tokenizer and npm tiktoken (OpenAI's Rust
# core as WASM) encoding the same file with the same LLaMA 3 vocabulary, one
# after the other in one run.
#
# usage: bench/tokenizer_bench.sh BUILD_DIR [TEXT_FILE] [N]
# needs: node, and npm tiktoken installed somewhere outside the repo, e.g.
#   mkdir -p /tmp/tt && (cd /tmp/tt && npm install tiktoken@1.0.22)
#   TIKTOKEN_MODULE=/tmp/tt/node_modules/tiktoken bench/tokenizer_bench.sh build
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tokenizer_bench.sh BUILD_DIR [TEXT_FILE] [N]}
text=${2:-$here/tests/data/tokenizer/tinyshakespeare.txt}
n=${3:-10}
ranks=$here/tests/data/tokenizer/llama3.tiktoken
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
"$build/bench_tokenizer" "$ranks" "$text" "$n"
TIKTOKEN_MODULE=${TIKTOKEN_MODULE:-/tmp/tt/node_modules/tiktoken} node "$here/bench/tokenizer_tiktoken.mjs" "$ranks" "$text" "$n"
