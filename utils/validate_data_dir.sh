#!/usr/bin/env bash
# validate_data_dir.sh — check a Kaldi data dir (sorted unique keys, consistent utt2spk/spk2utt/wav.scp,
# feats.scp/utt2num_frames and trials when present); one line per problem, exit 1 if any.
set -euo pipefail
no_wav=false
no_feats=false
no_trials=false
max_per_kind=20
help_message="Usage: $0 [--no-wav] [--no-feats] [--no-trials] [--max-per-kind N] <data-dir>
  Checks <data-dir> and prints one line per problem (file, line/key, what is wrong); exit 1 if any.
  --no-wav           do not require wav.scp
  --no-feats         do not check feats.scp/utt2num_frames even if present
  --no-trials        do not check trials even if present
  --max-per-kind N   messages per file and kind of problem before a count of the rest (0: all; default 20)
Example: $0 data/mini_train"

# Bare flags (no value), as in Kaldi's validate_data_dir.sh; the rest goes through parse_options.sh.
rest=()
for a in "$@"; do
  case "$a" in
    --no-wav|--no_wav) no_wav=true ;;
    --no-feats|--no_feats) no_feats=true ;;
    --no-trials|--no_trials) no_trials=true ;;
    *) rest+=("$a") ;;
  esac
done
set -- ${rest[@]+"${rest[@]}"}
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 1 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi

opts=(--max-per-kind "$max_per_kind")
[ "$no_wav" = true ] && opts+=(--no-wav)
[ "$no_feats" = true ] && opts+=(--no-feats)
[ "$no_trials" = true ] && opts+=(--no-trials)
exec python -m dmha.bin.validate_data_dir "${opts[@]}" "$1"
