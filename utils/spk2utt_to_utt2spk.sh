#!/usr/bin/env bash
# spk2utt_to_utt2spk.sh — spk2utt -> utt2spk (files given or stdin; result on stdout), like Kaldi's .pl.
set -euo pipefail
help_message="Usage: $0 [<spk2utt> ...] > utt2spk
  Reads spk2utt lines from the files given (or stdin), writes utt2spk lines to stdout in input order.
Example: $0 data/train/spk2utt > data/train/utt2spk"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
exec python -m dmha.bin.spk2utt_to_utt2spk "$@"
