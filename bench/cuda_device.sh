#!/usr/bin/env bash
# cuda_device.sh — everything of docs/PERFORMANCE.md "CUDA" in ONE pass on a
# GPU machine, one step after the other (no background jobs, no wait loops):
#   test_cuda; random 2B4T model; bench_cuda_bw (copy bandwidth = roofline,
#   persistent-kernel phase trace); bitnet bench batch-1 decode (persistent /
#   separate kernels x f16 / int8 head, interleaved), prefill 512, 8/32/64
#   sequences, decode at ~2k context; transformers BitNetForCausalLM bf16 on
#   the same weights (exported --to hf-packed, see hf_transformers_bench.py);
#   compute-sanitizer memcheck and racecheck on test_cuda.
# usage: bench/cuda_device.sh OUTDIR [BINDIR] [full|nosan]
#   BINDIR: binaries built with -DBITNET_CUDA=ON (default .cudacarry/bin; the
#   shared libraries they need beside it in ../lib, see LD_LIBRARY_PATH).
set -u
out=${1:-/tmp/cuda-out}; bin=${2:-.cudacarry/bin}; mode=${3:-full}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export BN_SOURCE_DIR=$PWD
[ -d "$bin/../lib" ] && export LD_LIBRARY_PATH=$(cd "$bin/../lib" && pwd):${LD_LIBRARY_PATH:-}
S=$out/summary.txt
log() { echo "== $* [$(date +%T)]" | tee -a "$S"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee -a "$S"
(command -v nvcc >/dev/null && nvcc --version | tail -1) | tee -a "$S"

log test_cuda
timeout 120 "$bin/test_cuda" >"$out/test_cuda.log" 2>&1
echo "test_cuda rc=$?" | tee -a "$S"
grep -E "max \||checks|FAIL|failed" "$out/test_cuda.log" | tee -a "$S"

log random model
"$bin/bitnet" random-model --shape 2b4t -o /tmp/r.gguf >"$out/random.log" 2>&1 || tail -3 "$out/random.log"
log "bench_cuda_bw: copy bandwidth, bytes per step, persistent-kernel trace"
timeout 150 "$bin/bench_cuda_bw" /tmp/r.gguf 128 >"$out/bw.log" 2>&1
grep -vE "^bitnet info: (model|context)" "$out/bw.log" | tee -a "$S"
bw=$(awk '/device-to-device of 2 GiB/ { for (i = 1; i <= NF; i++) if ($i == "GB/s") print $(i - 1) }' "$out/bw.log")

# batch-1 runs print the fraction of the copy roofline: bytes/step x tokens/s / copy GB/s
bench() {
  log "bitnet bench --device cuda $*"
  timeout 150 "$bin/bitnet" bench --device cuda -m /tmp/r.gguf "$@" 2>>"$out/bench_err.log" >"$out/last.txt"
  grep -E "^(pp|tg)|decode reads" "$out/last.txt" | tee -a "$S"
}
roof() {
  awk -v bw="$bw" '/^tg/ { t = $2 } /decode reads/ { mb = $3 }
    END { if (t && mb && bw) printf "   roofline: %.1f MB x %.1f tok/s = %.0f GB/s = %.1f%% of %.0f GB/s\n", mb, t, mb * t / 1000, 100 * mb * t / 1000 / bw, bw }' \
    "$out/last.txt" | tee -a "$S"
}
for rep in 1 2; do
  bench -p 0 -n 128 -r 5; roof
  bench -p 0 -n 128 -r 5 --cuda separate; roof
  bench -p 0 -n 128 -r 5 --head q8; roof
  bench -p 0 -n 128 -r 5 --head q8 --cuda separate; roof
done
bench -p 512 -n 0 -r 5
bench -p 0 -n 64 -r 3 --seqs 8
bench -p 0 -n 64 -r 3 --seqs 32
bench -p 0 -n 64 -r 3 --seqs 64
bench -p 2048 -n 64 -r 2; roof

log "transformers BitNetForCausalLM bf16 on the same weights"
rm -rf /tmp/rhf
timeout 120 "$bin/bitnet" convert /tmp/r.gguf /tmp/rhf --to hf-packed >"$out/convert.log" 2>&1 || tail -3 "$out/convert.log" | tee -a "$S"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" 2>&1 | tail -1 | tee -a "$S"
timeout 150 python3 bench/hf_transformers_bench.py --model /tmp/rhf --prompt 512 --gen 128 --caches dynamic --random-prefill \
  >"$out/hf.log" 2>&1
echo "hf rc=$?" | tee -a "$S"
tail -1 "$out/hf.log" | tee -a "$S"

[ "$mode" = nosan ] && exit 0
log "compute-sanitizer memcheck test_cuda"
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_cuda" >"$out/memcheck.log" 2>&1
echo "memcheck rc=$?" | tee -a "$S"
grep -E "ERROR SUMMARY|checks" "$out/memcheck.log" | tail -3 | tee -a "$S"
log "compute-sanitizer racecheck test_cuda"
timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 "$bin/test_cuda" --short >"$out/racecheck.log" 2>&1
echo "racecheck rc=$?" | tee -a "$S"
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|checks" "$out/racecheck.log" | tail -3 | tee -a "$S"
log done
