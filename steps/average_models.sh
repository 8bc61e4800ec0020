#!/usr/bin/env bash
# steps/average_models.sh — checkpoint averaging: one model from the last / best N epoch models.
set -euo pipefail

num=5                # epoch models to average
select=last          # last | best (lowest validation EER)
output=              # file name in <exp-dir> (default avg_<select><num>.pt)

help_message="Usage: $0 [options] <exp-dir>
  Averages the weights and BatchNorm statistics of <exp-dir>/models/epoch_<N>.pt (written during
  training when train.keep_epoch_models > 0) into <exp-dir>/avg_<select><num>.pt, a file in best.pt's
  format: use it with --model in steps/extract_embeddings.sh and steps/compute_threshold.sh.
Options:
  --num N             epoch models to average (default $num)
  --select last|best  the N latest epochs, or the N of lowest validation EER (default $select)
  --output NAME       output file name in <exp-dir> (default avg_<select><num>.pt)
Example:
  $0 --num 5 --select last exp/mini_dmha
  steps/extract_embeddings.sh --model avg_last5.pt exp/mini_dmha data/mini_test exp/mini_dmha/embeddings/mini_test"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
opts=(--num "$num" --select "$select")
[ -n "$output" ] && opts+=(--output "$output")
python -m dmha.bin.average_models "${opts[@]}" "$1"
