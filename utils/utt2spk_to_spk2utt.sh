#!/usr/bin/env bash
# utt2spk_to_spk2utt.sh — utt2spk -> spk2utt (files given or stdin; result on stdout), like Kaldi's .pl.
set -euo pipefail
help_message="Usage: $0 [<utt2spk> ...] > spk2utt
  Reads utt2spk lines from the files given (or stdin), writes spk2utt lines to stdout, keeping
  the order in which speakers and utterances first appear.
Example: $0 data/train/utt2spk > data/train/spk2utt"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
exec python -m dmha.bin.utt2spk_to_spk2utt "$@"
