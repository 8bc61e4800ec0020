#!/usr/bin/env bash
# bench/run_all.sh — run every benchmark of bench/ and collect their markdown tables in bench/results/.
#
# Each benchmark prints its own figures with a baseline measured in the same run and peak memory
# beside the times; this script only runs them (niced), saves each one's output as
# <out>/<name>.md (stderr in <name>.log) and writes <out>/summary.md: an index (status, wall time,
# load average before/after — the machine may be shared) followed by every table.
set -euo pipefail

quick=false        # true: small sizes (minutes), for a smoke run
device=cpu         # device for bench_train / bench_extract (cpu, cuda, auto)
threads=1          # torch threads for bench_train (1: CPU time is exact on a shared machine; 0: default)
recipe=true        # include bench_recipe (trains the mini model: stages --recipe-stages)
recipe_stages=3-5
only=              # comma list of benchmarks to run (default all): features,metrics,scoring,extract,train,recipe
out=bench/results

help_message="Usage: $0 [options]
  Runs the benchmarks of bench/ and writes <out>/<name>.md and <out>/summary.md.
Options:
  --quick B            small sizes for a smoke run (default $quick)
  --device DEV         cpu | cuda | auto for the model benchmarks (default $device)
  --threads N          torch threads for bench_train (default $threads; 0 = torch default)
  --recipe B           include the per-stage recipe timing (default $recipe)
  --recipe-stages N-M  stages for bench_recipe (default $recipe_stages, on the existing data/)
  --only LIST          comma list: features,metrics,scoring,extract,train,recipe (default all)
  --out DIR            (default $out)
Example:
  nice bench/run_all.sh --quick true
  bench/run_all.sh --device cuda --only train,extract"

cd "$(dirname "$0")/.."
. ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
mkdir -p "$out"

if [ "$quick" = true ]; then
  features_opts=(--utts 8 --seconds 4 --repeats 2)
  metrics_opts=(--sizes 1e5,1e6 --repeats 2)
  scoring_opts=(--utts 20000 --trials 100000)
  extract_opts=(--n-utts 40)
  train_opts=(--cases mini --steps 2 --rounds 1 --pool-reps 5)
else
  features_opts=()
  metrics_opts=()
  scoring_opts=()
  extract_opts=()
  train_opts=(--cases paper,mini --steps 3 --rounds 2)
fi

index=()
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

run_bench() {  # name command...
  local name=$1
  shift
  want "$name" || return 0
  local l0 t0 status dt rc=0
  l0=$(loadavg)
  t0=$(date +%s)
  echo "=== $(date '+%F %T') bench $name: $*" >&2
  nice "$@" > "$out/$name.md.tmp" 2> "$out/$name.log" || rc=$?
  if [ "$rc" -eq 0 ]; then
    mv "$out/$name.md.tmp" "$out/$name.md"
    status=ok
  else
    mv "$out/$name.md.tmp" "$out/$name.failed.md"
    rm -f "$out/$name.md"
    status="FAILED (rc $rc; see $out/$name.log)"
  fi
  dt=$(( $(date +%s) - t0 ))
  index+=("| $name | $status | $dt | $l0 | $(loadavg) | \`$*\` |")
  echo "    $name: $status ($dt s)" >&2
}

run_bench features python bench/bench_features.py "${features_opts[@]}"
run_bench metrics python bench/bench_metrics.py "${metrics_opts[@]}"
run_bench scoring python bench/bench_scoring.py "${scoring_opts[@]}"
run_bench extract python bench/bench_extract.py --device "$device" "${extract_opts[@]}"
run_bench train python bench/bench_train.py --device "$device" --threads "$threads" "${train_opts[@]}"
if [ "$recipe" = true ]; then
  run_bench recipe python bench/bench_recipe.py --stages "$recipe_stages"
fi

{
  echo "# dmha benchmarks ($(date -u '+%F %H:%M UTC'), $(nproc) CPUs, quick=$quick, device=$device)"
  echo
  echo "| bench | status | wall s | load before | load after | command |"
  echo "|---|---|---:|---|---|---|"
  printf '%s\n' "${index[@]}"
  for md in features metrics scoring extract train recipe; do
    if [ -f "$out/$md.md" ] && want "$md"; then
      echo
      cat "$out/$md.md"
    fi
  done
} > "$out/summary.md.tmp"
mv "$out/summary.md.tmp" "$out/summary.md"
echo "$0: wrote $out/summary.md" >&2
