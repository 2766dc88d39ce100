#!/usr/bin/env bash
# cuda_device.sh — one pass on a GPU machine: build with -DBITNET_CUDA=ON,
# run test_cuda (+ compute-sanitizer), then the figures of docs/PERFORMANCE.md
# (copy bandwidth, batch-1 / batched decode, prefill) on a random 2B4T model.
# usage: bench/cuda_device.sh OUTDIR [quick|full] [BINDIR]   (logs land in OUTDIR;
# BINDIR: binaries built elsewhere with -DBITNET_CUDA=ON, else it builds here)
set -u
out=${1:-/tmp/cuda-out}; mode=${2:-full}
mkdir -p "$out"
cd "$(dirname "$0")/.."
log() { echo "== $*" | tee -a "$out/summary.txt"; }
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; nvcc --version | tail -1; } >>"$out/summary.txt" 2>&1
bin=${3:-}
if [ -n "$bin" ] && [ -x "$bin/bitnet" ]; then
  log "prebuilt binaries in $bin"
else
  log build
  t0=$(date +%s)
  cmake -S . -B build-gpu -DBITNET_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" >"$out/build.log" 2>&1 &&
    cmake --build build-gpu -j16 >>"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  log "built in $(( $(date +%s) - t0 )) s"
  bin=build-gpu
fi
log test_cuda
timeout 300 $bin/test_cuda >"$out/test_cuda.log" 2>&1; echo "rc=$?" >>"$out/test_cuda.log"
grep -E "CHECK|failed|worst|rows|test_cuda|copy|batched|rc=" "$out/test_cuda.log" | head -60 | tee -a "$out/summary.txt"
log "test_cuda with BITNET_CUDA_FUSE=0 BITNET_CUDA_PDL=0 (unfused decode kernels)"
BITNET_CUDA_FUSE=0 BITNET_CUDA_PDL=0 timeout 300 $bin/test_cuda 2>&1 | grep -E "CHECK|test_cuda:" | head -20 | tee -a "$out/summary.txt"
if [ -x $bin/test_model ]; then log test_model; timeout 120 $bin/test_model 2>&1 | grep -E "CHECK|test_model:" | tee -a "$out/summary.txt"; fi
log random model
t0=$(date +%s)
$bin/bitnet random-model --shape 2b4t -o /tmp/r.gguf >"$out/random.log" 2>&1 || tail "$out/random.log"
log "random model in $(( $(date +%s) - t0 )) s"
$bin/bench_cuda_bw /tmp/r.gguf 2>&1 | tee -a "$out/summary.txt"
b=$bin/bitnet
run() { log "bitnet bench $*"; timeout 120 $b bench --device cuda -m /tmp/r.gguf "$@" 2>>"$out/bench_err.log" | tee -a "$out/summary.txt"; }
run -p 0 -n 128 -r 5
log "without programmatic dependent launch:"
BITNET_CUDA_PDL=0 run -p 0 -n 128 -r 5
log "without the fused decode kernels (norm+GEMV, rope+attention):"
BITNET_CUDA_FUSE=0 run -p 0 -n 128 -r 5
log "batch-1 decode at a long context (prompt 2048, f32 and f16 KV cache):"
run -p 2048 -n 128 -r 3
BITNET_CUDA_KV=f16 run -p 2048 -n 128 -r 3
run -p 512 -n 0 -r 5
run -p 0 -n 64 -r 3 --seqs 4
run -p 0 -n 64 -r 3 --seqs 8
run -p 0 -n 64 -r 3 --seqs 32
run -p 0 -n 64 -r 3 --seqs 64
[ "$mode" = quick ] && exit 0
[ "$mode" = noprof ] || {
log "ncu: kernels of decode steps (4 layers of step 3, then the head of step 1)"
met=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
{ timeout 100 ncu --clock-control none --launch-skip 700 --launch-count 40 --metrics $met \
    $b bench --device cuda -m /tmp/r.gguf -p 0 -n 8 -r 1
  timeout 60 ncu --clock-control none --launch-skip 290 --launch-count 16 --metrics $met \
    $b bench --device cuda -m /tmp/r.gguf -p 0 -n 2 -r 1; } >"$out/ncu.log" 2>&1
}
log "compute-sanitizer memcheck test_cuda"
timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $bin/test_cuda >"$out/memcheck.log" 2>&1
echo "memcheck rc=$?" | tee -a "$out/summary.txt"; grep -E "ERROR SUMMARY|tests? .*passed|failed" "$out/memcheck.log" | tail -3 | tee -a "$out/summary.txt"
[ "$mode" = norace ] && exit 0
log "compute-sanitizer racecheck test_cuda"
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $bin/test_cuda >"$out/racecheck.log" 2>&1
echo "racecheck rc=$?" | tee -a "$out/summary.txt"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/racecheck.log" | tail -3 | tee -a "$out/summary.txt"
