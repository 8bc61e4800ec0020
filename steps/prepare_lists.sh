#!/usr/bin/env bash
# steps/prepare_lists.sh — stage 2: speaker map, length-filtered training list, validation trials.
set -euo pipefail

config=          # YAML config (train.min_frames, train.crop_frames, train.seed)
override=        # dotted overrides, e.g. "train.min_frames=50"
max_val_trials=20000

help_message="Usage: $0 --config <yaml> [options] <train-data-dir> <val-data-dir> <lists-dir>
  Writes <lists-dir>/{spk2int, train.list, train_feats.scp, val_trials, val_feats.scp, summary}.
  Training utterances shorter than train.min_frames are dropped (counts logged and in summary);
  those shorter than train.crop_frames are kept and padded by repetition when cropped.
  Validation trials: <val-data-dir>/trials, or generated from its utt2spk when absent.
Options:
  --config FILE          model/training YAML (required)
  --override \"k=v ...\"   dotted config overrides (e.g. \"train.min_frames=50\")
  --max-val-trials N     cap on generated validation trials (default $max_val_trials)
Example:
  steps/prepare_lists.sh --config egs/mini/conf/dmha.yaml data/mini_train data/mini_val data/mini_train/lists"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 3 ] || [ -z "$config" ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

mkdir -p "$3/log"
python -m dmha.bin.prepare_lists --config "$config" --override "$override" \
  --max-val-trials "$max_val_trials" "$1" "$2" "$3" 2>&1 | tee "$3/log/prepare_lists.log"
