#!/usr/bin/env bash
# digest_data_dir.sh — SHA-256 of a data dir's audio (wav.scp files) and features (feats.scp matrices),
# independent of where the files lie; compare a corpus between clones or machines.
set -euo pipefail
no_feats=false
help_message="Usage: $0 [--no-feats true|false] <data-dir> [<data-dir> ...]
  Prints '<data-dir> audio|features <count> <sha256>' per data dir: the audio digest covers each utterance id
  and its file's bytes, the feature digest each id, shape and float32 values (C-sorted utterance order).
  --no-feats true   audio only
Example: $0 data/mini_train data/mini_test"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -lt 1 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
opts=()
[ "$no_feats" = true ] && opts+=(--no-feats)
exec python -m dmha.bin.digest_data_dir ${opts[@]+"${opts[@]}"} "$@"
