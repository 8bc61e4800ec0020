#!/usr/bin/env bash
# local/prepare_voxceleb.sh — stage 0 of run.sh --corpus voxceleb: Kaldi data dirs from the user's
# VoxCeleb1/VoxCeleb2 trees (official layout) and the official VoxCeleb1 trial lists.
set -euo pipefail

vox1=
vox2=
trials_dir=
m4a_mode=pipe
convert_dir=
nj=4
val_speakers=40
val_utts_per_spk=25
val_trials=20000
max_missing_pct=1
seed=0

help_message="Usage: $0 --vox1 <dir> [--vox2 <dir>] [options] <data-dir>
  Writes <data-dir>/{vox2_train,vox2_val,vox1,vox1_O,vox1_E,vox1_H,...}/ (wav.scp, utt2spk, spk2utt;
  trials for vox2_val and each test set). Utterance ids: <spk>-<video>-<nnnnn>,
  e.g. id10270-x6uYqmx31kE-00001 (the official path with '/' -> '-', no extension).
  Layout expected:
    <vox2>/dev/aac/<spk>/<video>/<nnnnn>.m4a   (or converted: <vox2>/dev/wav/.../<nnnnn>.wav)
    <vox1>/dev/wav/<spk>/<video>/<nnnnn>.wav and <vox1>/test/wav/...   (or merged: <vox1>/wav/...)
    <trials-dir>/veri_test2.txt list_test_all.txt list_test_hard.txt   (test sets vox1_O vox1_E vox1_H,
      the paper's lists) and optionally veri_test.txt list_test_all2.txt list_test_hard2.txt
      (vox1_O_orig vox1_E_clean vox1_H_clean)
Options:
  --vox1 DIR              VoxCeleb1 root (dev and test: the E and H lists use all of VoxCeleb1)
  --vox2 DIR              VoxCeleb2 root (training set; omit to prepare the test sets only)
  --trials-dir DIR        folder of the official trial lists (default: the --vox1 dir)
  --m4a-mode pipe|convert pipe: wav.scp decodes m4a with an ffmpeg pipe at feature time (default);
                          convert: convert once to 16 kHz wav (~265 GB for VoxCeleb2 dev)
  --convert-dir DIR       destination of --m4a-mode convert (default <data-dir>/vox2_dev_wav)
  --nj N                  parallel ffmpeg processes for convert (default $nj)
  --val-speakers N        VoxCeleb2 dev speakers held out for validation (default $val_speakers)
  --val-utts-per-spk N    utterances per validation speaker (default $val_utts_per_spk; 0: all)
  --val-trials N          max generated validation trials (default $val_trials)
  --max-missing-pct P     a trial list whose utterances are missing from the tree: those trials are
                          left out (listed in data/<set>/trials.missing, warned); fail if more than
                          P percent of the list is affected (default $max_missing_pct; 0: fail on any)
  --seed N                seed of the validation split (default $seed)
Example:
  $0 --vox1 /corpora/voxceleb1 --vox2 /corpora/voxceleb2 --nj 8 data"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 1 ] || [ -z "$vox1" ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

opts=(--vox1 "$vox1" --m4a-mode "$m4a_mode" --nj "$nj" --val-speakers "$val_speakers"
      --val-utts-per-spk "$val_utts_per_spk" --val-trials "$val_trials"
      --max-missing-pct "$max_missing_pct" --seed "$seed")
[ -n "$vox2" ] && opts+=(--vox2 "$vox2")
[ -n "$trials_dir" ] && opts+=(--trials-dir "$trials_dir")
[ -n "$convert_dir" ] && opts+=(--convert-dir "$convert_dir")
exec python -m dmha.bin.prepare_voxceleb "${opts[@]}" "$1"
