#!/usr/bin/env bash
# run.sh — the dmha recipe: Double Multi-Head Attention speaker verification, Kaldi style.
#
# Stages (each reads and writes files under data/ and exp/ only):
#   0  data prep      -> data/<set>/{wav.scp,utt2spk,spk2utt}, data/<test>/trials
#   1  features       -> data/<set>/{feats.scp,utt2num_frames} + fbank/*.ark  (log-mel, --nj jobs);
#                        with --speed-perturb / --augment also the copies of the training set and the
#                        combined training set data/<train>[_sp][_aug] (all off by default)
#   2  training lists -> data/<train>/lists/ (speaker map, length filter, validation trials)
#   3  training       -> exp/<name>/ (config.yaml, checkpoints, train.log, best model);
#                        with --lm-finetune also exp/<name>_lmft (large-margin fine-tuning, off by default)
#   4  embeddings     -> exp/<name>/embeddings/<set>/xvector.{ark,scp}; with --score-backend also
#                        exp/<name>/backend (mean + LDA [+ PLDA] of the training embeddings); threshold, calibration
#   5  scoring        -> exp/<name>/scores/<set>[.<backend>].score, exp/<name>/results, DET plots
set -euo pipefail

stage=0
stop_stage=5
nj=4                 # parallel jobs for features and extraction
cmd=local            # job backend: local or slurm (see utils/launch.sh)
corpus=mini          # mini (embedded default corpus) or voxceleb (bring your own)
config=              # model/training YAML; default egs/<corpus>/conf/dmha.yaml
exp_name=            # default <corpus>_<config basename>
device=auto          # auto (CUDA if available, else CPU), cpu, cuda, cuda:1 ...
nproc=1              # training processes on this node (torchrun); on GPUs: one per GPU
ngpu=0               # alias of --nproc for GPU servers (0: use --nproc)
nodes=1              # training nodes (torchrun rendezvous; see README "Scaling out")
seed=0               # corpus seed (mini) — the training seed lives in the YAML config
mini_opts=           # extra options of local/make_mini_corpus.sh (--corpus mini), e.g. toy runs
score_norm=none      # none, snorm or asnorm (cohort: per-speaker means of the training set)
average_models=0     # N > 0: stages 4-5 use the average of N epoch models (needs train.keep_epoch_models >= N)
average_select=last  # last | best (lowest validation EER): which N epoch models to average
feat_storage=        # float32 | cm2 | cm3: how stage 1 stores features (default: the corpus's, else float32)
calibrate=true       # stage 4 fits <exp>/calibration.yaml on the validation trials; stage 5 adds Cllr/actDCF
score_backend=       # none | mean | lda | plda: scoring back-end fitted on the training embeddings in stage 4
                     # (default: the corpus's default_score_backend, else none)
lda_dim=200          # LDA output dim (capped at training speakers - 1)
# VoxCeleb (stage 0 with --corpus voxceleb)
vox1=
vox2=
trials_dir=
vox_opts=            # extra options of local/prepare_voxceleb.sh (--corpus voxceleb)
# Training-data augmentation and fine-tuning (all off by default; the paper used none of them)
speed_perturb=false  # add speed-perturbed copies of the training set (stage 1)
speed_factors="0.9 1.1"
sp_new_speakers=true # the copies are new speakers (WeSpeaker's x3 classes); false: the same speakers
augment=false        # add augmented copies (reverb, noise, music, babble) of the training set (stage 1)
aug_kinds=reverb,noise,music,babble
aug_subset=0         # keep a random N of the augmented copies (0: all)
musan=               # MUSAN folder for noise/music/babble (default: synthetic noise/music, training babble)
rirs=                # RIRS_NOISES folder for reverb (default: simulated rooms)
aug_real_noise=false # also real noise and music from Debian (lincity-ng-data, sonic-pi-samples; ~67 MB, once)
aug_opts=            # extra options of steps/augment_data_dir.sh, e.g. "--noise-dir /my/noises"
lm_finetune=false    # large-margin fine-tuning after training (stage 3) into exp/<name>_lmft
lmft_conf=           # its override YAML (default egs/<corpus>/conf/lmft.yaml)

help_message="Usage: $0 [options]
  Runs the dmha recipe from --stage to --stop-stage.
Options:
  --stage N          first stage to run (default $stage)
  --stop-stage N     last stage to run (default $stop_stage)
  --nj N             parallel jobs for features/extraction (default $nj)
  --cmd local|slurm  job backend (default $cmd)
  --corpus NAME      mini | voxceleb (default $corpus)
  --config FILE      model/training YAML (default egs/<corpus>/conf/dmha.yaml)
  --exp-name NAME    experiment dir name under exp/ (default <corpus>_<config name>)
  --device DEV       auto | cpu | cuda | cuda:N (default $device)
  --nproc N          training processes per node (default $nproc)
  --ngpu N           GPUs per node for training (implies --nproc N)
  --nodes N          training nodes (default $nodes)
  --seed N           mini corpus seed (default $seed)
  --mini-opts \"..\"   extra options of local/make_mini_corpus.sh, e.g. \"--voices us1,us2,de1,fr1,de2,fr2
                     --utts-per-spk 6 --n-test 2 --n-val 2\" (a toy corpus; see its --help)
                     or \"--rhvoice true --real-voices true\" (more voices; also --pico, --festival;
                     README, mini corpus)
  --score-norm X     none | snorm | asnorm (default $score_norm)
  --average-models N  extract and score with the average of N epoch models (steps/average_models.sh,
                     written at the start of stage 4 as exp/<name>/avg_<select>N.pt); the config must keep
                     them: train.keep_epoch_models >= N (default $average_models: best.pt)
  --average-select X  last | best: the N latest epochs or the N of lowest validation EER (default $average_select)
  --feat-storage S   float32 | cm2 | cm3: feature archives as float32, or Kaldi compressed matrices of
                     2 bytes (half the disk) / 1 byte per value; training reads crops partially from all
                     three (see README \"Scaling\") (default: the corpus's default_feat_storage, else float32)
  --calibrate B      true | false: fit the score calibration in stage 4 and report Cllr and the actual
                     DCF in stage 5 (calibration does not change EER/minDCF; default $calibrate)
  --score-backend X  none | mean | lda | plda: stage 4 fits a back-end on the training set's embeddings
                     (steps/train_backend.sh: global mean, + LDA, + PLDA), stage 5 scores with it as well
                     as with plain cosine; the threshold, calibration, dmha-verify and ONNX export use it
                     (default: the corpus's; mini: plda, voxceleb: none as in the paper)
  --lda-dim N        LDA output dim, capped at training speakers - 1 (default $lda_dim)
  --vox1 DIR --vox2 DIR [--trials-dir DIR]   VoxCeleb locations (--corpus voxceleb)
  --vox-opts \"..\"    extra options of local/prepare_voxceleb.sh, e.g. \"--m4a-mode convert\"
 Augmentation and fine-tuning (off by default; the default exp name gets _sp, _aug; stages 4-5 then use
 exp/<name>_lmft with --lm-finetune true):
  --speed-perturb BOOL   add copies at --speed-factors \"$speed_factors\" (ids sp0.9-<utt>) (default $speed_perturb)
  --sp-new-speakers BOOL the speed copies are new speakers (default $sp_new_speakers)
  --augment BOOL         add --aug-kinds $aug_kinds copies (ids <utt>-reverb ...) (default $augment)
  --aug-subset N         keep a random N of them (default $aug_subset: all)
  --musan DIR --rirs DIR MUSAN / RIRS_NOISES (default: synthetic noise and music, babble of other
                         training speakers, simulated rooms)
  --aug-real-noise BOOL  also real noise/music loops from Debian, fetched once (default $aug_real_noise)
  --aug-opts \"..\"      extra options of steps/augment_data_dir.sh (see its --help)
  --lm-finetune BOOL     large-margin fine-tuning after training (default $lm_finetune)
  --lmft-conf FILE       its settings (default egs/<corpus>/conf/lmft.yaml)
Examples:
  bash run.sh                                  # whole mini recipe, stages 0-5
  bash run.sh --stage 3 --stop-stage 5         # retrain, extract, score after a config change
  bash run.sh --corpus voxceleb --vox1 /data/voxceleb1 --vox2 /data/voxceleb2 --ngpu 4 \\
       --config egs/voxceleb/conf/dmha_k32.yaml
  bash run.sh --speed-perturb true --augment true --lm-finetune true   # the modern recipe on mini"

cd "$(dirname "$0")"
. ./path.sh
. utils/parse_options.sh

[ $# -eq 0 ] || { echo "$0: unexpected arguments: $* (see --help)" >&2; exit 1; }
[ -f "egs/$corpus/corpus.sh" ] || { echo "$0: unknown corpus '$corpus' (no egs/$corpus/corpus.sh)" >&2; exit 1; }
# corpus.sh defines train_set, val_set, test_sets and the default config for this corpus.
. "egs/$corpus/corpus.sh"
config=${config:-$default_config}
feat_storage=${feat_storage:-${default_feat_storage:-float32}}
score_backend=${score_backend:-${default_score_backend:-none}}
case "$score_backend" in none|mean|lda|plda) ;; *) echo "$0: --score-backend must be none, mean, lda or plda" >&2; exit 1 ;; esac
case "$feat_storage" in float32|cm2|cm3) ;; *) echo "$0: --feat-storage must be float32, cm2 or cm3" >&2; exit 1 ;; esac
[ -f "$config" ] || { echo "$0: config '$config' not found" >&2; exit 1; }
# The training data: the clean set, plus speed-perturbed copies (_sp), plus augmented copies (_aug).
train_data=$train_set
suffix=
$speed_perturb && { train_data=${train_data}_sp; suffix=${suffix}_sp; }
$augment && { train_data=${train_data}_aug; suffix=${suffix}_aug; }
exp_name=${exp_name:-${corpus}_$(basename "$config" .yaml)$suffix}
train_exp=exp/$exp_name
expdir=$train_exp    # the model that stages 4-5 embed and score with
lmft_conf=${lmft_conf:-egs/$corpus/conf/lmft.yaml}
if $lm_finetune; then
  [ -f "$lmft_conf" ] || { echo "$0: --lmft-conf $lmft_conf not found" >&2; exit 1; }
  expdir=${train_exp}_lmft
fi
[ "$ngpu" -gt 0 ] && nproc=$ngpu
# A site's Slurm settings for this corpus (partition, time, GPUs) unless the user named a file.
if [ -f "egs/$corpus/conf/slurm.yaml" ] && [ -z "${DMHA_SLURM_CONFIG:-}" ]; then
  export DMHA_SLURM_CONFIG="egs/$corpus/conf/slurm.yaml"
fi

# Test sets that share one data dir (VoxCeleb's O/E/H lists all draw on data/vox1) get features and
# embeddings once: egs/<corpus>/corpus.sh may define test_data_of <test-set> -> <data set>.
type test_data_of >/dev/null 2>&1 || test_data_of() { echo "$1"; }
test_data_sets=$(for s in $test_sets; do test_data_of "$s"; done | awk '!seen[$0]++' | xargs)

log_stage() { echo "=== $(date '+%F %T') stage $1: $2"; }

# The weights stages 4-5 use: best.pt, or an average of epoch models (checkpoint averaging).
model=best.pt
[ "$average_models" -gt 0 ] && model=avg_${average_select}${average_models}.pt
case "$calibrate" in true|false) ;; *) echo "$0: --calibrate must be true or false" >&2; exit 1 ;; esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log_stage 0 "data preparation ($corpus)"
  prepare_corpus   # defined in egs/<corpus>/corpus.sh
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log_stage 1 "log-mel features for: $train_set $val_set $test_data_sets"
  for set in $train_set $val_set $test_data_sets; do
    steps/make_fbank.sh --nj "$nj" --cmd "$cmd" --storage "$feat_storage" --feat-config "$config" "data/$set"
  done
  # Copies of the training set get their own features, then are combined with the set they copy (the
  # clean features are computed once). Each step skips work that is complete.
  base=$train_set
  if $speed_perturb; then
    log_stage 1 "speed-perturbed copies of $base (factors $speed_factors)"
    steps/perturb_data_dir_speed.sh --factors "$speed_factors" --new-speakers "$sp_new_speakers" \
      "data/$base" "data/${base}_sp_copies"
    steps/make_fbank.sh --nj "$nj" --cmd "$cmd" --storage "$feat_storage" --feat-config "$config" "data/${base}_sp_copies"
    utils/combine_data.sh "data/${base}_sp" "data/$base" "data/${base}_sp_copies"
    base=${base}_sp
  fi
  if $augment; then
    log_stage 1 "augmented copies of $base ($aug_kinds)"
    aug_args=(--kinds "$aug_kinds" --subset "$aug_subset" --seed "$seed")
    [ -n "$musan" ] && aug_args+=(--musan "$musan")
    [ -n "$rirs" ] && aug_args+=(--rirs "$rirs")
    if $aug_real_noise; then
      eval "aug_args+=($(local/fetch_noise.sh))"   # --noise-dir D --music-dir "D D"
    fi
    # shellcheck disable=SC2086  # --aug-opts: several options, split on purpose
    steps/augment_data_dir.sh "${aug_args[@]}" ${aug_opts:-} "data/$base" "data/${base}_aug_copies"
    steps/make_fbank.sh --nj "$nj" --cmd "$cmd" --storage "$feat_storage" --feat-config "$config" "data/${base}_aug_copies"
    utils/combine_data.sh "data/${base}_aug" "data/$base" "data/${base}_aug_copies"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log_stage 2 "training lists for $train_data (validation: $val_set)"
  steps/prepare_lists.sh --config "$config" "data/$train_data" "data/$val_set" "data/$train_data/lists"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log_stage 3 "training $train_exp from $config on $device (nproc=$nproc nodes=$nodes)"
  steps/train.sh --config "$config" --device "$device" --nproc "$nproc" --ngpu "$ngpu" --nodes "$nodes" --cmd "$cmd" \
    "data/$train_data/lists" "$train_exp"
  if $lm_finetune; then
    log_stage 3 "large-margin fine-tuning $train_exp -> $expdir ($lmft_conf)"
    steps/lm_finetune.sh --conf "$lmft_conf" --device "$device" --nproc "$nproc" --ngpu "$ngpu" --nodes "$nodes" \
      --cmd "$cmd" "data/$train_data/lists" "$train_exp" "$expdir"
  fi
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  emb_sets="$test_data_sets"
  if [ "$score_norm" != none ] || [ "$score_backend" != none ]; then emb_sets="$train_set $test_data_sets"; fi
  log_stage 4 "embeddings for: $emb_sets with $model; back-end ($score_backend), decision threshold and calibration for dmha-verify"
  if [ "$average_models" -gt 0 ]; then
    steps/average_models.sh --num "$average_models" --select "$average_select" --output "$model" "$expdir"
  fi
  for set in $emb_sets; do
    steps/extract_embeddings.sh --nj "$nj" --cmd "$cmd" --device "$device" --model "$model" \
      "$expdir" "data/$set" "$expdir/embeddings/$set"
  done
  # <exp>/backend: global mean (+ LDA) of the training embeddings; removed with --score-backend none so that the
  # threshold, calibration and dmha-verify below score as stage 5's plain cosine does.
  if [ "$score_backend" != none ]; then
    steps/train_backend.sh --kind "$score_backend" --lda-dim "$lda_dim" --model "$model" \
      "$expdir" "data/$train_set" "$expdir/embeddings/$train_set"
  else
    rm -rf "$expdir/backend"
  fi
  # <exp>/threshold.yaml: EER threshold of the validation trials; <exp>/calibration.yaml: score -> LLR
  # fitted on the same trials (both after the back-end; read by dmha-verify / dmha.load_model)
  steps/compute_threshold.sh --device "$device" --model "$model" --calibrate "$calibrate" \
    "$expdir" "data/$train_data/lists"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log_stage 5 "scoring ($score_norm; cosine$([ "$score_backend" != none ] && echo " and back-end $score_backend")) for: $test_sets"
  cohort_opts=()
  [ "$score_norm" != none ] && cohort_opts=(--cohort "$expdir/embeddings/$train_set/spk_xvector.scp")
  # The calibration (stage 4) is fitted on the back-end's (or, without one, plain cosine) scores without
  # normalisation: it applies to those. Stage 4 writes none for a model whose scores it cannot calibrate.
  cal_opts=()
  if [ "$calibrate" = true ] && [ "$score_norm" = none ] && [ -f "$expdir/calibration.yaml" ]; then
    cal_opts=(--calibration "$expdir/calibration.yaml")
  fi
  backends=none
  [ "$score_backend" != none ] && backends="none $score_backend"
  for set in $test_sets; do
    # scores/<set>[.<backend>][.<norm>].score: plain cosine always, the back-end's beside it; all kept.
    for be in $backends; do
      opts=()
      score_file=$expdir/scores/$set
      if [ "$be" != none ]; then
        opts=(--backend "$expdir/backend")
        score_file=$score_file.$be
      fi
      [ "$be" = "$score_backend" ] && opts+=("${cal_opts[@]}")
      [ "$score_norm" != none ] && score_file=$score_file.$score_norm
      steps/score.sh --norm "$score_norm" "${cohort_opts[@]}" "${opts[@]}" --results "$expdir/results" \
        --name "$set" "data/$set/trials" "$expdir/embeddings/$(test_data_of "$set")" "$score_file.score"
    done
  done
  python -m dmha.bin.summarize_results "$expdir/results"
fi
