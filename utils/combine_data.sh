#!/usr/bin/env bash
# combine_data.sh — combine data dirs into one (union of utterances).
set -euo pipefail
help_message="Usage: $0 <dest-dir> <src-dir1> <src-dir2> ...
  Writes the union of the source data dirs to <dest-dir>. A per-utterance file (wav.scp, feats.scp,
  utt2num_frames, utt2dur) is combined only when every source has it. The same key with different
  values in two sources is an error; identical duplicates are merged. trials are not combined.
Example: $0 data/train_all data/vox1_dev data/vox2_dev"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -lt 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
exec python -m dmha.bin.combine_data "$@"
