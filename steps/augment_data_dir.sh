#!/usr/bin/env bash
# steps/augment_data_dir.sh — augmented copies of a training data dir (Kaldi v2 recipe style).
set -euo pipefail

kinds="reverb,noise,music,babble"   # copies to make of every utterance
seed=0               # augmentation seed: every choice is a function of (seed, copy id)
subset=0             # keep a random N of all copies (0: all)
musan=               # MUSAN folder (noise/ music/ speech/)
rirs=                # RIRS_NOISES folder (or any folder of impulse responses)
noise_dir=           # extra folder(s) of noise files, space-separated
music_dir=           # extra folder(s) of music files, space-separated
write_wav=           # store the copies as WAV files in this folder instead of pipes
nj=1                 # processes for --write-wav

help_message="Usage: $0 [options] <src-data-dir> <dest-data-dir>
  Writes augmented copies of every utterance of <src-data-dir> to <dest-data-dir>: ids
  <utt>-reverb, <utt>-noise, <utt>-music, <utt>-babble (same speakers). Each wav.scp entry is a pipe
  'python -m dmha.bin.augment_wav ... |' (no audio stored; stage 1 runs them in-process) whose options
  name every choice (SNR, RT60, noise files, babble utterances); random content is drawn from
  (--seed, copy id), so the same line always gives the same samples. Offline defaults: synthetic
  coloured noise, synthetic music, babble of 3-7 other training speakers, simulated rooms.
  Combine the copies with the clean dir yourself (utils/combine_data.sh), after features if you like.
  A rerun with the same options does nothing; with other options it rewrites the dir (features of the
  old copies are removed). Bad input (missing MUSAN/RIR folder, one without audio, an unreadable noise
  file) stops with one line before anything is written.
Options:
  --kinds LIST        comma-separated: reverb,noise,music,babble,telephone (default $kinds);
                      telephone: 8 kHz band limit + a codec (pcm, G.711 mu-law/A-law, GSM), chosen per copy
  --seed N            augmentation seed (default $seed)
  --subset N          keep a random N of the copies, as Kaldi v2 keeps 1M of 5M (default $subset: all)
  --musan DIR         MUSAN: noise (SNR 0-15 dB), music (5-15), speech as babble (13-20, 3-7 speakers)
  --rirs DIR          RIRS_NOISES (simulated small and medium rooms) or any folder of impulse responses
  --noise-dir \"D ..\"  extra noise folders (e.g. downloads/noise, see local/fetch_noise.sh)
  --music-dir \"D ..\"  extra music folders
  --write-wav DIR     write 16-bit WAV files into DIR (resumable) and list them in wav.scp
  --nj N              processes for --write-wav (default $nj)
Examples:
  $0 data/mini_train data/mini_train_aug_copies
  $0 --musan /corpora/musan --rirs /corpora/RIRS_NOISES --subset 1000000 data/vox2_train data/vox2_train_aug_copies"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"
po_require_int seed subset nj
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi

args=(--kinds "$kinds" --seed "$seed" --subset "$subset" --nj "$nj")
[ -n "$musan" ] && args+=(--musan "$musan")
[ -n "$rirs" ] && args+=(--rirs "$rirs")
for d in $noise_dir; do args+=(--noise-dir "$d"); done
for d in $music_dir; do args+=(--music-dir "$d"); done
[ -n "$write_wav" ] && args+=(--write-wav "$write_wav")
python -m dmha.bin.augment_data_dir "${args[@]}" "$1" "$2"
