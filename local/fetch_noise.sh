#!/usr/bin/env bash
# local/fetch_noise.sh — real noise and music for the augmented copies, from Debian main, fetched once.
#   lincity-ng-data (GPL-2+, the whole package): 141 sound effects (500 s)         -> noise
#                             3 music tracks (563 s)                               -> music
#   sonic-pi-samples (CC0 samples from freesound.org, see its copyright): 165 samples and loops (324 s) -> music
# Prints the options of steps/augment_data_dir.sh that use them (run.sh --aug-real-noise true does this).
set -euo pipefail

dir=downloads/noise

help_message="Usage: $0 [--dir DIR]
  Fetches the Debian packages lincity-ng-data and sonic-pi-samples with local/fetch_debs.sh (private apt
  configuration, no installation; cached: a rerun is offline) into DIR (default $dir) and prints
  '--noise-dir <sounds> --music-dir \"<music> <samples>\"' for steps/augment_data_dir.sh.
  Licences: DIR/usr/share/doc/{lincity-ng-data,sonic-pi-samples}/copyright."

. "$(dirname "$0")/../utils/parse_options.sh"
[ $# -eq 0 ] || { printf '%s\n' "$help_message" >&2; exit 1; }

"$(dirname "$0")/fetch_debs.sh" "$dir" lincity-ng-data sonic-pi-samples >&2
sounds=$dir/usr/share/games/lincity-ng/sounds
music=$dir/usr/share/games/lincity-ng/music
samples=$dir/usr/share/sonic-pi/samples
for d in "$sounds" "$music" "$samples"; do
  [ -d "$d" ] || { echo "$0: ERROR: $d not found after unpacking (another package version?)" >&2; exit 1; }
done
echo "--noise-dir $sounds --music-dir \"$music $samples\""
