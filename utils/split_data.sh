#!/usr/bin/env bash
# split_data.sh — split a data dir into <dir>/split<N>/{1..N}/ for N parallel jobs.
set -euo pipefail
per_utt=false
help_message="Usage: $0 [--per-utt] <data-dir> <N>
  Writes <data-dir>/split<N>/1 .. <data-dir>/split<N>/<N>, each a complete data dir (utt2spk, spk2utt,
  wav.scp, and feats.scp/utt2num_frames/utt2dur when present); together they hold every utterance.
  By speaker (no speaker cut across parts, balanced by utterance count) unless --per-utt.
  A split that is up to date (same mode, same source files) is reused, not rewritten.
Example: $0 data/mini_train 4; then job JOB reads data/mini_train/split4/JOB"

# --per-utt is a bare flag (as in Kaldi's split_data.sh); --per-utt true|false also works.
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --per-utt|--per_utt)
      if [ "${2:-}" = true ] || [ "${2:-}" = false ]; then per_utt=$2; shift; else per_utt=true; fi ;;
    *) rest+=("$1") ;;
  esac
  shift
done
set -- ${rest[@]+"${rest[@]}"}
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
opts=()
[ "$per_utt" = true ] && opts+=(--per-utt)
exec python -m dmha.bin.split_data ${opts[@]+"${opts[@]}"} "$1" "$2"
