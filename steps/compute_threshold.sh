#!/usr/bin/env bash
# steps/compute_threshold.sh — the same/different decision threshold of a trained model (for dmha-verify).
set -euo pipefail

device=auto

help_message="Usage: $0 [options] <exp-dir> <lists-dir>
  Scores the validation trials of stage 2 (<lists-dir>/val_trials, val_feats.scp) with <exp-dir>/best.pt
  and writes <exp-dir>/threshold.yaml: the cosine threshold at the EER operating point (score >=
  threshold means same speaker), with the EER, trial counts and the model step it belongs to.
  Read by dmha-verify and dmha.load_model(<exp-dir>).threshold.
Options:
  --device DEV     auto | cpu | cuda | cuda:N (default $device)
Example:
  $0 exp/mini_dmha data/mini_train/lists"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
python -m dmha.bin.compute_threshold --device "$device" "$1" "$2"
