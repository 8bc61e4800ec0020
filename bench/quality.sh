#!/usr/bin/env bash
# bench/quality.sh — quality report: every pooling of the mini recipe x several training seeds, plus the
# peer model Resemblyzer, scored on the same trials; a markdown table (mean ± spread over seeds) and one
# DET plot per test set with all systems.
#
# Each system is a config of egs/mini/conf (optionally with overrides), trained with the same budget:
# the same train.max_epochs for all (--epochs) and no early stop (--same-budget true), seed = train.seed.
# It calls the recipe's own stage scripts (steps/train.sh, steps/extract_embeddings.sh, steps/score.sh),
# so a run means what run.sh stages 3-5 mean. Re-running resumes: finished trainings and up-to-date
# embeddings are skipped by those scripts.
set -euo pipefail

systems="stats attention mha dmha dmha_k4=dmha:model.heads=4"
seeds="0 1 2"
epochs=            # train.max_epochs for every system (empty: each config's own value)
same_budget=true   # true: no early stop (train.stop_patience=1000), every run trains all its epochs
conf_dir=egs/mini/conf
train_set=mini_train
test_sets="mini_test real_test"
prepare=true       # run.sh stages 1-2 first (features of all sets + training lists; up-to-date skips)
peer=true          # also embed and score with Resemblyzer (pip install --no-deps -r bench/requirements.txt)
train_opts=        # extra overrides for every system, e.g. "train.batch_size=16"
nj=2
jobs=1             # trainings run at once (each uses the config's train.num_threads torch threads)
device=auto
exp_root=exp/quality
bootstrap=1000     # draws of the paired seed x speaker bootstrap (significance table; 0: none)
score_backend=plda # none | mean | lda | plda: also score after a back-end fitted on --train-set's embeddings (as
                   # run.sh stage 4-5 on mini); the report shows those scores (plain cosine ones are kept)
out=bench/results/quality

help_message="Usage: $0 [options]
  Trains each system with each seed on the mini recipe's lists, extracts embeddings, scores the test
  sets, and writes <out>.md (table) and <out>.det.<set>.png (DET plots).
Options:
  --systems \"..\"       NAME[=CONFIG[:K=V,K=V]][@DATA][+lmft[:K=V,..]][+avgN] list (CONFIG = name in
                       --conf-dir, default NAME; DATA: train on data/DATA/lists instead of --train-set's,
                       e.g. mini_train_sp made by run.sh --speed-perturb true --stop-stage 2; +lmft:
                       then large-margin fine-tuning with --conf-dir's lmft.yaml and these overrides;
                       +avgN: extract with the average of the last N epoch models, which needs
                       train.keep_epoch_models=N) (default \"$systems\")
  --seeds \"0 1 2\"      training seeds (train.seed) (default \"$seeds\")
  --epochs N           train.max_epochs for every system (default: the configs' own)
  --same-budget B      true: no early stopping, all runs train all epochs (default $same_budget)
  --train-opts \"..\"    extra dotted overrides for every run (default none)
  --conf-dir DIR       (default $conf_dir)
  --test-sets \"..\"     (default \"$test_sets\")
  --prepare B          run run.sh --stage 1 --stop-stage 2 first (default $prepare)
  --peer B             include Resemblyzer (default $peer)
  --nj N               extraction jobs (default $nj)
  --jobs N             (system, seed) runs at once; 2 on 2 cores with the mini configs' single torch
                       thread nearly halves the wall time (default $jobs)
  --device DEV         auto | cpu | cuda (default $device)
  --exp-root DIR       (default $exp_root)
  --score-backend X    none | mean | lda | plda: fit steps/train_backend.sh on each run's --train-set embeddings,
                       score with it too, and report those scores (default $score_backend; plain cosine
                       scores/<set>.score are always written)
  --bootstrap N        draws of the paired bootstrap over seeds and test speakers that says whether the
                       best system is significantly better than each other one (0: none) (default $bootstrap)
  --out PREFIX         (default $out)
Examples:
  bench/quality.sh --jobs 2                                 # full report: about an hour on 2 CPU cores
  bench/quality.sh --systems \"stats dmha\" --seeds 0 --epochs 1 --peer false   # toy check
  bench/quality.sh --systems \"base=dmha sp=dmha:train.max_epochs=3@mini_train_sp
      avg=dmha:train.keep_epoch_models=3+avg3 lmft=dmha:train.max_epochs=7+lmft:train.max_epochs=2\"
                                                            # an ablation (equal step budgets are yours)"

cd "$(dirname "$0")/.."
. ./path.sh
. utils/parse_options.sh
po_require_int epochs

if [ $# -ne 0 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

lists=data/$train_set/lists
if [ "$prepare" = true ]; then
  echo "=== $(date '+%F %T') quality: features and training lists (run.sh stages 1-2)"
  bash run.sh --stage 1 --stop-stage 2 --nj "$nj"
fi
[ -f "$lists/train.list" ] || { echo "$0: $lists/train.list missing; run with --prepare true" >&2; exit 1; }

# Torch threads per extraction job: the cores shared by --jobs runs of --nj jobs each. Without this each
# job took cores / nj threads, and two runs at once oversubscribed a 2-core machine: their extraction of
# mini_train had not finished a block after 4.5 minutes (PITFALLS: OpenMP threads waiting for a busy core).
extract_threads=$(( $(nproc 2>/dev/null || echo 1) / (jobs * nj) ))
[ "$extract_threads" -ge 1 ] || extract_threads=1

# One (system, seed) run: train, extract and score; its output goes to <exp>/quality.log when run in
# the background so that parallel runs do not interleave.
run_one() {
  local name=$1 seed=$2 config=$3 opts=$4 exp=$5 sys_lists=$6 lmft=$7 avg=$8 t0 set model=best.pt
  echo "=== $(date '+%F %T') quality: $name seed $seed: train ($config; $opts; $sys_lists)"
  t0=$(date +%s)
  if [ "$lmft" = none ]; then
    steps/train.sh --config "$config" --device "$device" --override "$opts" "$sys_lists" "$exp"
  else  # <exp>/base is the trained model, <exp> its fine-tuned version (the one scored)
    steps/train.sh --config "$config" --device "$device" --override "$opts" "$sys_lists" "$exp/base"
    echo "=== $(date '+%F %T') quality: $name seed $seed: large-margin fine-tuning (${lmft:-lmft.yaml as is})"
    steps/lm_finetune.sh --conf "$conf_dir/lmft.yaml" --override "$lmft" --device "$device" \
      "$sys_lists" "$exp/base" "$exp"
  fi
  # wall time of the training call(s) (a resumed/finished run records the time of this call only once)
  [ -f "$exp/quality_train_seconds" ] || echo $(( $(date +%s) - t0 )) > "$exp/quality_train_seconds"
  if [ "$avg" -gt 0 ]; then
    model=avg_last$avg.pt
    steps/average_models.sh --num "$avg" --select last --output "$model" "$exp"
  fi
  if [ "$score_backend" != none ]; then
    steps/extract_embeddings.sh --nj "$nj" --num-threads "$extract_threads" --device "$device" --model "$model" \
      "$exp" "data/$train_set" "$exp/embeddings/$train_set"
    steps/train_backend.sh --kind "$score_backend" --model "$model" "$exp" "data/$train_set" "$exp/embeddings/$train_set"
  fi
  for set in $test_sets; do
    steps/extract_embeddings.sh --nj "$nj" --num-threads "$extract_threads" --device "$device" --model "$model" \
      "$exp" "data/$set" "$exp/embeddings/$set"
    steps/score.sh --results "$exp/results" --name "$set" "data/$set/trials" "$exp/embeddings/$set" \
      "$exp/scores/$set.score"
    if [ "$score_backend" != none ]; then
      steps/score.sh --backend "$exp/backend" --results "$exp/results" --name "$set" "data/$set/trials" \
        "$exp/embeddings/$set" "$exp/scores/$set.$score_backend.score"
    fi
  done
  echo "=== $(date '+%F %T') quality: $name seed $seed: done"
}

names=()
pids=()
pid_exps=()
failed=0
# waits for the oldest background run; a failure is counted and reported with its log, the others go on
wait_oldest() {
  if ! wait "${pids[0]}"; then
    echo "$0: run ${pid_exps[0]} failed; see ${pid_exps[0]}/quality.log" >&2
    failed=$((failed + 1))
  fi
  pids=("${pids[@]:1}")
  pid_exps=("${pid_exps[@]:1}")
}
for spec in $systems; do
  # post-training steps: +lmft[:K=V,..] and +avgN
  lmft=none
  avg=0
  IFS=+ read -r -a parts <<< "$spec"
  spec=${parts[0]}
  for post in "${parts[@]:1}"; do
    case "$post" in
      lmft) lmft= ;;
      lmft:*) lmft=${post#lmft:}; lmft=${lmft//,/ } ;;
      avg[1-9]*) avg=${post#avg}
        [[ "$avg" =~ ^[0-9]+$ ]] || { echo "$0: system '$spec': '+$post': expected +avgN, N a whole number" >&2; exit 1; } ;;
      *) echo "$0: system '$spec': unknown step '+$post' (+lmft[:K=V,..] or +avgN)" >&2; exit 1 ;;
    esac
  done
  sys_lists=$lists
  if [[ "$spec" == *@* ]]; then
    sys_lists=data/${spec##*@}/lists
    spec=${spec%@*}
    [ -f "$sys_lists/train.list" ] || { echo "$0: system '$spec': $sys_lists/train.list missing; run run.sh" \
      "--stop-stage 2 with the options that make data/${sys_lists#data/}" >&2; exit 1; }
  fi
  name=${spec%%=*}
  rest=${spec#*=}
  [ "$rest" = "$spec" ] && rest=$name
  cfg=${rest%%:*}
  ovr=
  [ "$rest" != "$cfg" ] && ovr=${rest#*:}
  ovr=${ovr//,/ }
  config=$conf_dir/$cfg.yaml
  [ -f "$config" ] || { echo "$0: system '$name': config $config not found" >&2; exit 1; }
  names+=("$name")
  for seed in $seeds; do
    exp=$exp_root/${name}_s$seed
    opts="train.seed=$seed"
    [ -n "$epochs" ] && opts+=" train.max_epochs=$epochs"
    [ "$same_budget" = true ] && opts+=" train.stop_patience=1000"
    [ -n "$ovr" ] && opts+=" $ovr"
    [ -n "$train_opts" ] && opts+=" $train_opts"
    if [ "$jobs" -le 1 ]; then
      run_one "$name" "$seed" "$config" "$opts" "$exp" "$sys_lists" "$lmft" "$avg"
      continue
    fi
    while [ "${#pids[@]}" -ge "$jobs" ]; do wait_oldest; done
    mkdir -p "$exp"
    echo "=== $(date '+%F %T') quality: $name seed $seed started in the background (log: $exp/quality.log)"
    ( run_one "$name" "$seed" "$config" "$opts" "$exp" "$sys_lists" "$lmft" "$avg" ) > "$exp/quality.log" 2>&1 &
    pids+=($!)
    pid_exps+=("$exp")
  done
done
while [ "${#pids[@]}" -gt 0 ]; do wait_oldest; done
if [ "$failed" -gt 0 ]; then
  echo "$0: $failed run(s) failed (logs named above); finished runs are kept, re-run to resume" >&2
  exit 1
fi

peer_opt=()
if [ "$peer" = true ]; then
  pexp=$exp_root/resemblyzer
  for set in $test_sets; do
    if [ -f "$pexp/embeddings/$set/xvector.scp" ] && [ "$pexp/embeddings/$set/xvector.scp" -nt "data/$set/wav.scp" ]; then
      echo "$0: $pexp/embeddings/$set is up to date; skipping Resemblyzer extraction"
    else
      echo "=== $(date '+%F %T') quality: Resemblyzer embeddings for $set"
      python bench/resemblyzer_embed.py "data/$set" "$pexp/embeddings/$set"
    fi
    steps/score.sh --results "$pexp/results" --name "$set" "data/$set/trials" "$pexp/embeddings/$set" \
      "$pexp/scores/$set.score"
  done
  peer_opt=(--peer resemblyzer)
fi

mkdir -p "$(dirname "$out")"
first_seed=${seeds%% *}
{
  echo "# Quality: mini recipe, $(date -u '+%F %H:%M UTC')"
  echo
  echo "systems: $systems; seeds: $seeds; epochs: ${epochs:-config default}; same budget: $same_budget;" \
       "back-end: $score_backend;" \
       "extra overrides: ${train_opts:-none}; device $device; runs at once: $jobs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  python bench/quality_report.py --exp-root "$exp_root" --systems "${names[*]}" --seeds "$seeds" \
    --sets "$test_sets" "${peer_opt[@]}" --bootstrap "$bootstrap" --data-root data --backend "$score_backend"
  echo
  for set in $test_sets; do
    echo "DET ($set, seed $first_seed of each system): $(basename "$out").det.$set.png"
  done
} > "$out.md.tmp"
mv "$out.md.tmp" "$out.md"
for set in $test_sets; do
  curves=()
  for name in "${names[@]}"; do
    sfx=
    [ "$score_backend" != none ] && sfx=.$score_backend
    curves+=("$name=$exp_root/${name}_s$first_seed/scores/$set$sfx.score")
  done
  [ "$peer" = true ] && curves+=("resemblyzer=$exp_root/resemblyzer/scores/$set.score")
  python bench/det_all.py --title "$set (seed $first_seed)" --out "$out.det.$set.png" "${curves[@]}"
done
cat "$out.md"
echo "$0: wrote $out.md and $out.det.<set>.png" >&2
