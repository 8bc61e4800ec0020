#!/usr/bin/env bash
# steps/perturb_data_dir_speed.sh — speed-perturbed copies of a data dir (Kaldi's perturb_data_dir_speed.sh).
set -euo pipefail

factors="0.9 1.1"    # speed factors (> 0, != 1)
new_speakers=true    # the copies are new speakers (WeSpeaker's x3 classes); false: the same speakers

help_message="Usage: $0 [options] <src-data-dir> <dest-data-dir>
  Writes copies of every utterance of <src-data-dir> played at each speed factor to <dest-data-dir>
  (0.9: slower and lower-pitched, 1/0.9 as long; polyphase resampling, scipy). wav.scp entries are
  pipes 'python -m dmha.bin.augment_wav --kind speed ... |'; utt2dur is scaled.
  --new-speakers true:  ids sp0.9-<utt>, speakers sp0.9-<spk> (3x the classes with the clean dir)
  --new-speakers false: ids <utt>-sp0.9, speakers unchanged (ids must start with their speaker's)
  Combine the copies with the source dir yourself (utils/combine_data.sh).
Options:
  --factors \"F ..\"      speed factors (default \"$factors\")
  --new-speakers BOOL   relabel the copies as new speakers (default $new_speakers)
Example:
  $0 data/mini_train data/mini_train_sp_copies && utils/combine_data.sh data/mini_train_sp data/mini_train data/mini_train_sp_copies"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
case "$new_speakers" in
  true) same=() ;;
  false) same=(--same-speakers) ;;
  *) echo "$0: --new-speakers must be true or false, got '$new_speakers'" >&2; exit 1 ;;
esac
python -m dmha.bin.perturb_data_dir_speed --factors "$factors" ${same[@]+"${same[@]}"} "$1" "$2"
