#!/usr/bin/env bash
# copy_data_dir.sh — copy a data dir under new utterance/speaker ids (Kaldi's utils/copy_data_dir.sh).
set -euo pipefail
utt_prefix=
utt_suffix=
spk_prefix=
spk_suffix=
help_message="Usage: $0 [--utt-suffix S | --utt-prefix P --spk-prefix P] [--spk-suffix S] <src-dir> <dest-dir>
  Writes <dest-dir> with every utterance id u renamed <utt-prefix>u<utt-suffix> and every speaker s
  <spk-prefix>s<spk-suffix>; wav.scp/feats.scp values are kept (the copy shares the audio and features),
  spk2gender, spk2domain and fbank.yaml are carried, trials are not. Utterance ids must keep starting with
  their speaker id: --utt-prefix needs the same --spk-prefix.
Example (train on the real speakers three times as often, the copies as the same speakers):
  awk '\$2 == \"real\"' data/mini_train/spk2domain > real.spk
  utils/subset_data_dir.sh --spk-list real.spk data/mini_train data/mini_train_real
  utils/copy_data_dir.sh --utt-suffix -rx1 data/mini_train_real data/mini_train_rx1
  utils/copy_data_dir.sh --utt-suffix -rx2 data/mini_train_real data/mini_train_rx2
  utils/combine_data.sh data/mini_train_rx3 data/mini_train data/mini_train_rx1 data/mini_train_rx2"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
exec python -m dmha.bin.copy_data_dir --utt-prefix="$utt_prefix" --utt-suffix="$utt_suffix" \
  --spk-prefix="$spk_prefix" --spk-suffix="$spk_suffix" "$1" "$2"
