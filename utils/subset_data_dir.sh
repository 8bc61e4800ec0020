#!/usr/bin/env bash
# subset_data_dir.sh — write a subset of a data dir (utterance list, speaker list, first N, random N).
set -euo pipefail
utt_list=
spk_list=
first=
random=
seed=0
help_message="Usage: $0 [--utt-list F | --spk-list F | --first N | --random N [--seed S]] <src-dir> <dest-dir>
  Exactly one selection:
  --utt-list F   the utterances listed in F (first column)
  --spk-list F   all utterances of the speakers listed in F (first column)
  --first N      the first N utterances (C order)
  --random N     N utterances drawn at random with --seed (default $seed); same seed, same subset
  Per-utterance files present in <src-dir> are subset, spk2utt regenerated; trials are not copied.
Example: $0 --random 1000 --seed 1 data/train data/train_1k"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
po_require_int first random
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
opts=()
[ -n "$utt_list" ] && opts+=(--utt-list "$utt_list")
[ -n "$spk_list" ] && opts+=(--spk-list "$spk_list")
[ -n "$first" ] && opts+=(--first "$first")
[ -n "$random" ] && opts+=(--random "$random")
exec python -m dmha.bin.subset_data_dir ${opts[@]+"${opts[@]}"} --seed "$seed" "$1" "$2"
