#!/usr/bin/env bash
# fix_data_dir.sh — repair a data dir in place: sort, dedupe, keep utterances present in every file,
# drop those listed in bad_utts, regenerate spk2utt; originals are kept in <dir>/.backup/.
set -euo pipefail
help_message="Usage: $0 <data-dir>
  Sorts every per-utterance file (utt2spk, wav.scp, feats.scp, utt2num_frames, utt2dur), drops
  utterances with conflicting duplicates, malformed or invalid values, listed in bad_utts, or missing
  from any of those files; regenerates spk2utt; reports how many were dropped and why.
  The trials file is never edited: trials naming dropped utterances are counted in a warning.
Example: $0 data/mini_train"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 1 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
exec python -m dmha.bin.fix_data_dir "$1"
