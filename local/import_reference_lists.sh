#!/usr/bin/env bash
# local/import_reference_lists.sh — the paper's reference-code lists as Kaldi data dirs and trials, to
# train and validate on exactly the reference's lists (conventions: dmha/corpus/reference_lists.py).
set -euo pipefail

audio_dir=
valid_audio_dir=
clients=
impostors=
val_dir=

help_message="Usage: $0 [options] <train-labels> <train-data-dir>
  <train-labels>: '<path> <label> -1' per line (labels 0..N-1, paths with or without .wav)
  -> <train-data-dir>/{wav.scp,utt2spk,spk2utt}: speakers spk<label> (zero-padded, so stage 2's
     class indices equal the reference labels), utterances <spk>-<path without extension, '/' -> '-'>.
  With --clients/--impostors/--val-dir: validation pairs ('<path> <path>' per line) ->
     <val-dir>/{wav.scp,utt2spk,spk2utt,trials} (clients = target, impostors = nontarget).
Options:
  --audio-dir DIR        folder the label file's paths are relative to (reference: --train_data_dir)
  --clients FILE         same-speaker validation pairs
  --impostors FILE       different-speaker validation pairs
  --val-dir DIR          output data dir of the validation set
  --valid-audio-dir DIR  folder of the pair files' paths (reference: --valid_data_dir; default --audio-dir)
Example:
  $0 --audio-dir /corpora/voxceleb2/dev/aac --clients labels/clients.ndx --impostors labels/impostors.ndx \\
     --val-dir data/ref_val labels/labels.ndx data/ref_train
  steps/prepare_lists.sh --config egs/voxceleb/conf/dmha_k32.yaml data/ref_train data/ref_val data/ref_train/lists"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
opts=()
[ -n "$audio_dir" ] && opts+=(--audio-dir "$audio_dir")
[ -n "$valid_audio_dir" ] && opts+=(--valid-audio-dir "$valid_audio_dir")
[ -n "$clients" ] && opts+=(--clients "$clients")
[ -n "$impostors" ] && opts+=(--impostors "$impostors")
[ -n "$val_dir" ] && opts+=(--val-dir "$val_dir")
exec python -m dmha.bin.import_reference_lists ${opts[@]+"${opts[@]}"} "$1" "$2"
