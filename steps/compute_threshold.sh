#!/usr/bin/env bash
# steps/compute_threshold.sh — decision threshold and score calibration of a trained model (for dmha-verify).
set -euo pipefail

device=auto
model=best.pt        # weights file in <exp-dir>: best.pt, or an average (steps/average_models.sh)
calibrate=true       # also fit <exp-dir>/calibration.yaml (cosine -> log-likelihood ratio)
fit_prior=0.5        # effective target prior of the calibration fit (0.5: minimises Cllr)

help_message="Usage: $0 [options] <exp-dir> <lists-dir>
  Scores the validation trials of stage 2 (<lists-dir>/val_trials, val_feats.scp) with <exp-dir>/best.pt
  (or --model) and writes, from that one embedding pass:
    <exp-dir>/threshold.yaml    the cosine threshold at the EER operating point (score >= threshold
                                means same speaker), with the EER, trial counts and the model it belongs to
    <exp-dir>/calibration.yaml  llr = scale * cosine + offset (prior-weighted logistic regression), with
                                the fit prior, trials, model and validation Cllr / actual DCF
  Read by dmha-verify and dmha.load_model(<exp-dir>): with a calibration they report a log-likelihood
  ratio and decide at the Bayes threshold of a target prior. With a back-end fitted for the model
  (<exp-dir>/backend, steps/train_backend.sh: run it first) the scores are taken after it, as in stage 5.
Options:
  --device DEV          auto | cpu | cuda | cuda:N (default $device)
  --model FILE          weights file in <exp-dir> (default $model), e.g. avg_last5.pt
  --calibrate true|false  fit calibration.yaml too (default $calibrate)
  --fit-prior P         effective target prior of the calibration fit (default $fit_prior)
Example:
  $0 exp/mini_dmha data/mini_train/lists"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
python -m dmha.bin.compute_threshold --device "$device" --model "$model" --calibrate "$calibrate" \
  --fit-prior "$fit_prior" "$1" "$2"
