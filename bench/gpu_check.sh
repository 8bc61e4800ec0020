#!/usr/bin/env bash
# bench/gpu_check.sh — the GPU checks of issue 17 in one run (<= 8 minutes on one GPU), one table.
set -euo pipefail

dry_run=false      # true: the same plumbing, tiny, on CPU (seconds); checks the script itself
workdir=/tmp/dmha_gpu_check
device=cuda
workers=8          # DataLoader workers for the training check
steps=20           # timed optimizer steps per training check (micro-batch 64 x 2 accumulation)
sim_utts=200000    # simulator: utterances (5,994 speakers; full VoxCeleb2 dev: 1092009)
dense_gb=4         # simulator: GB of archives with data (the loader reads these)
skip_pytest=false
skip_recipe=false

help_message="Usage: $0 [options]
  Prints a markdown table: the CUDA-marked tests (pytest -m gpu); the paper model's training samples/s
  (float32 and bf16 autocast) with the real data loader (partial reads) on simulator archives
  (bench/scale_sim.py), with the share of time spent waiting for data and the GPU utilisation; peak GPU
  memory at the paper's batch 64 x 2; embedding extraction batched vs batch-1 (bench/bench_extract.py);
  the recipe itself, run.sh --corpus voxceleb stages 0-5 with --device on a tiny fake VoxCeleb tree (wav,
  toy model): the training smoke test on the device.
  Budget: <= 8 minutes on one GPU. Files under --workdir (simulator archives: ~dense_gb GB on disk).
Options:
  --dry-run true|false   tiny model, tiny simulator, CPU: checks the plumbing in seconds (default $dry_run)
  --workdir DIR          scratch directory (default $workdir)
  --device DEV           cuda, cuda:N (default $device; the dry run uses cpu)
  --workers N            DataLoader workers (default $workers)
  --steps N              timed optimizer steps per training check (default $steps)
  --sim-utts N           simulator utterances (default $sim_utts)
  --dense-gb X           simulator GB with data (default $dense_gb)
  --skip-pytest true|false  leave out pytest -m gpu (default $skip_pytest)
  --skip-recipe true|false  leave out the run.sh smoke test (default $skip_recipe)
  On a GPU machine whose python already has a CUDA build of torch (and pytest): DMHA_NO_VENV=1 $0
Example:
  bench/gpu_check.sh 2>&1 | tee gpu_check.md
  bench/gpu_check.sh --dry-run true --workdir /tmp/gpu_dry"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. ./path.sh
. utils/parse_options.sh
po_require_int workers steps sim_utts

if [ $# -ne 0 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

if [ "$dry_run" != true ] && ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "$0: torch in $(command -v python) sees no CUDA device; on a GPU machine use a CUDA build of torch" \
    "(DMHA_NO_VENV=1 with your own environment), or --dry-run true on CPU" >&2
  exit 1
fi

mkdir -p "$workdir"
out="$workdir/results"
mkdir -p "$out"
sim="$workdir/sim"
micro=64; accum=2; warmup=3
override=""
extract_args=(--device "$device" --config egs/voxceleb/conf/dmha_k8.yaml --n-utts 1000 --batch-frames 60000)
sim_args=(--utts "$sim_utts" --speakers 5994 --jobs 200 --dense-gb "$dense_gb")
if [ "$dry_run" = true ]; then
  device=cpu; workers=1; steps=2; warmup=1; micro=4
  override="model.channels=[4,8,8,8] model.heads=2 model.embed_dim=16"
  extract_args=(--device cpu --n-utts 6 --min-frames 100 --max-frames 200 --threads 1)
  sim_args=(--utts 3000 --speakers 60 --val-speakers 4 --val-utts 5 --jobs 4 --dense-gb 0.02)
fi

t0=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - t0 )) s] $*" >&2; }

pytest_row="| pytest -m gpu | skipped (--skip-pytest) |"
if [ "$skip_pytest" != true ]; then
  log "pytest -m gpu"
  set +e
  python -m pytest -q -rs -m gpu tests/test_cuda.py tests/test_features.py tests/test_train.py -p no:cacheprovider \
    > "$out/pytest_gpu.log" 2>&1
  rc=$?
  set -e
  pytest_row="| pytest -m gpu (exit $rc) | $(tail -n 1 "$out/pytest_gpu.log") |"
fi

if [ ! -f "$sim/vox2_train/lists/summary" ]; then
  log "simulator: ${sim_args[*]}"
  rm -rf "$sim"
  python bench/scale_sim.py --out "$sim" "${sim_args[@]}" > "$out/scale_sim.md"
fi

for bf16 in false true; do
  log "training check bf16=$bf16 ($device, $workers workers, $steps steps)"
  python bench/gpu_train_check.py --sim "$sim" --device "$device" --bf16 "$bf16" --workers "$workers" \
    --steps "$steps" --warmup "$warmup" --micro-batch "$micro" --accum "$accum" --override "$override" \
    > "$out/train_bf16_$bf16.json"
done

log "extraction batched vs batch-1: ${extract_args[*]}"
python bench/bench_extract.py "${extract_args[@]}" > "$out/extract.md"

# The recipe as users run it, on the device: stages 0-5 of run.sh in a scratch copy of its entry points
# (data/ and exp/ land there), on a fake VoxCeleb tree of wav files (tests/voxceleb_fixtures.py: no ffmpeg).
recipe_row="| run.sh --corpus voxceleb stages 0-5 (toy) | skipped (--skip-recipe) |"
if [ "$skip_recipe" != true ]; then
  smoke="$workdir/recipe"
  log "recipe smoke test: run.sh --corpus voxceleb --stage 0 --device $device in $smoke"
  rm -rf "$smoke"
  mkdir -p "$smoke/work"
  python - "$smoke/vox" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from voxceleb_fixtures import make_fake_voxceleb

make_fake_voxceleb(Path(sys.argv[1]), m4a=False)
EOF
  for src in "$root"/*; do
    case "$(basename "$src")" in data|exp|fbank|mfcc) ;; *) ln -s "$src" "$smoke/work/" ;; esac
  done
  cat > "$smoke/work/toy.yaml" <<'EOF'
model: {channels: [4, 8, 8, 16], pooling: dmha, heads: 4, embed_dim: 32}
loss: {type: amsoftmax, scale: 30, margin: 0.4}
train: {crop_frames: 50, min_frames: 20, batch_size: 8, grad_accum: 1, lr: 1.0e-3, max_epochs: 2,
        ckpt_every_steps: 10, log_every_steps: 1, num_threads: 1}
EOF
  recipe_device=$device
  set +e
  (cd "$smoke/work" && VOX_PREP_OPTS="--val-speakers 2 --max-missing-pct 10" VOX_TEST_SETS="vox1_O" \
    bash run.sh --corpus voxceleb --vox1 "$smoke/vox/voxceleb1" --vox2 "$smoke/vox/voxceleb2" --stage 0 \
    --config toy.yaml --nj 2 --device "$recipe_device") > "$out/recipe.log" 2>&1
  rc=$?
  set -e
  exp_dir="$smoke/work/exp/voxceleb_toy"
  trained_on=$( (grep -ho "device [^ ]*$\|precision: .*" "$exp_dir/train.log" 2>/dev/null || true) | head -n 2 |
    paste -sd, -)
  eer=$(awk -F'\t' 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "eer") c = i}
                    NR > 1 && $1 == "vox1_O" && c {print $c; exit}' "$exp_dir/results.tsv" 2>/dev/null || true)
  recipe_row="| run.sh --corpus voxceleb stages 0-5 (toy model, fake wav tree, --device $recipe_device) | exit $rc;"
  recipe_row+=" training log: ${trained_on:-(no device/precision line)}; vox1_O EER ${eer:-none} % (toy: no meaning) |"
fi

python - "$out" "$pytest_row" "$dry_run" "$recipe_row" <<'EOF'
import json, sys
from pathlib import Path

out, pytest_row, dry = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "true"
print(f"## bench/gpu_check.sh{' (DRY RUN: tiny model on CPU, figures meaningless)' if dry else ''}\n")
print("| check | result |\n|---|---|")
print(pytest_row)
for bf16 in ("false", "true"):
    r = json.loads((out / f"train_bf16_{bf16}.json").read_text())
    util = "-" if r["util"] is None else f"{r['util']:.0f}%"
    peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f} GB"
    print(f"| training, {'bf16 autocast' if bf16 == 'true' else 'float32'} ({r['device']}, batch "
          f"{r['micro_batch']} x {r['accum']}, {r['workers']} loader workers, {r['classes']} classes) | "
          f"{r['samples_s']:.1f} samples/s = {r['tflops']:.2f} TFLOP/s ({r['gflop_per_crop']:.1f} GFLOP per "
          f"crop fwd+bwd); data wait {100 * r['data_wait']:.0f}% of wall; GPU util {util}; "
          f"peak memory {peak} |")
rows = [line for line in (out / "extract.md").read_text().splitlines() if line.startswith("| ")]
for line in rows[1:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    print(f"| extraction, {cells[0]} (batch {cells[1]}) | {cells[2]} utterances/s |")
for line in (out / "extract.md").read_text().splitlines():
    if line.startswith("speed-up batched"):
        print(f"| extraction {line.split(';')[0]} (issue 5 target: >= 5x) | {line.split(';', 1)[1].strip()} |")
print(sys.argv[4])
EOF
log "done (results in $out)"
