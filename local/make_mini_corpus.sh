#!/usr/bin/env bash
# local/make_mini_corpus.sh — stage 0 of the mini recipe: build the embedded default corpus.
#
# Synthetic speakers: the MBROLA voices of Debian (one voice database = one real person) driven by
# espeak-ng, 40-60 utterances each with varied text, rate and pitch, noise (5-20 dB SNR) and room
# reverberation on a part of them -> <data>/mini_train, mini_val, mini_test (disjoint speakers, split
# by seed and stratified by sex). With --rhvoice true, RHVoice voices (one recorded person each) join
# mini_train and mini_val, synthesized and augmented alike (mini_test and real_test unchanged); with
# --pico true the six SVOX Pico voices (six female persons) likewise, with --festival true the 12
# Festival/Flite voices (12 persons) likewise. Real speech: the Asterisk telephone prompts (7 persons) ->
# <data>/real_test. Test and validation sets get trials. Everything fetched from Debian lands in
# --download-dir (private apt configuration, nothing installed), so a rerun needs no network; a
# complete build leaves a stamp and a rerun with the same options only prints the summary.
set -euo pipefail

seed=0
nj=2
utts_per_spk=40:60     # N or MIN:MAX utterances per voice
voices=                # comma-separated MBROLA databases (empty: all 70); toy runs use a few
n_test=                # test speakers (empty: 20% of the voices)
n_val=                 # validation speakers (empty: 6% of the voices)
real_test=true         # also build real_test from the Asterisk prompts
real_max_utts=60       # prompts per real speaker
real_voices=false      # mini corpus version 5: recorded human voices in train/val + real2_test
real_train_utts=100    # pieces of real speech per real speaker (version 5)
n_real_val=6           # real validation speakers (version 5)
n_real_test=8          # real2_test speakers (version 5)
rhvoice=false          # RHVoice synthetic voices (32 persons) in mini_train and mini_val
rhv_voices=            # comma-separated RHVoice persons (empty: all 32); toy runs use a few
n_rhv_val=4            # RHVoice validation speakers
pico=false             # SVOX Pico synthetic voices (6 female persons) in mini_train and mini_val
n_pico_val=2           # Pico validation speakers
festival=false         # Festival/Flite synthetic voices (12 persons) in mini_train and mini_val
n_festival_val=2       # Festival/Flite validation speakers
download_dir=downloads

help_message="Usage: $0 [options] <data-dir>
  Builds <data-dir>/{mini_train,mini_val,mini_test,real_test} (wav.scp, utt2spk, spk2utt, utt2dur,
  spk2gender; trials for val/test) with audio in <data-dir>/mini_audio/.
Options:
  --seed N               corpus seed: speaker split, texts, augmentation (default $seed)
  --nj N                 parallel synthesis processes (default $nj)
  --utts-per-spk N|A:B   utterances per voice (default $utts_per_spk)
  --voices LIST          comma-separated MBROLA voices, e.g. us1,us2,de1,de2,fr1,fr2 (default: all 70)
  --n-test N             test speakers (default 20% of the voices)
  --n-val N              validation speakers (default 6% of the voices)
  --real-test BOOL       build real_test from the Asterisk prompts (default $real_test)
  --real-max-utts N      prompts per real speaker (default $real_max_utts)
  --real-voices BOOL     mini corpus version 5: add recorded human voices (festvox-ru, Tux Paint, Drascula,
                         UQM; ~490 MB of packages; labels checked, see README; UQM is non-commercial) to
                         mini_train and mini_val, and build real2_test from other real speakers
                         (default $real_voices)
  --real-train-utts N    pieces (1.5-8 s) per real speaker (default $real_train_utts)
  --n-real-val N         real validation speakers, 0 or >= 2 (default $n_real_val)
  --n-real-test N        real2_test speakers, 0 or >= 2 (default $n_real_test)
  --rhvoice BOOL         add RHVoice synthetic voices (32 persons, 17 female; ~290 MB of packages, several
                         CC-BY-NC-ND: non-commercial research only, see README) to mini_train and mini_val;
                         mini_test, real_test, real2_test unchanged (default $rhvoice)
  --rhv-voices LIST      comma-separated RHVoice persons, e.g. slt,anna,magda (default: all 32)
  --n-rhv-val N          RHVoice validation speakers, 0 or >= 2 (default $n_rhv_val)
  --pico BOOL            add the six SVOX Pico voices (en-US, en-GB, de, es, fr, it; six female persons;
                         Apache-2.0; the PyPI package py-nanotts is installed into the venv) to mini_train
                         and mini_val; mini_test, real_test, real2_test unchanged (default $pico)
  --n-pico-val N         Pico validation speakers, 0 or 2-5 (default $n_pico_val)
  --festival BOOL        add the 12 Festival/Flite voices (English, Castilian, Czech, Finnish, Catalan;
                         3 female; ~100 MB of packages; GPL/LGPL/free licences, see README) to
                         mini_train and mini_val; mini_test, real_test, real2_test unchanged (default $festival)
  --n-festival-val N     Festival/Flite validation speakers, 0 or 2-11 (default $n_festival_val)
  --download-dir DIR     cache of fetched Debian packages (default $download_dir)
Needs Debian's apt (apt-get, dpkg) the first time, to fetch espeak-ng/mbrola (when not installed), the
mbrola-* voices and the Asterisk prompt packages without installing them (local/fetch_debs.sh).
Example: $0 --seed 0 --nj 2 data"

. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/../utils/parse_options.sh"
po_require_int n_test n_val

if [ $# -ne 1 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
local_dir=$(cd "$(dirname "$0")" && pwd)
utils_dir=$local_dir/../utils

sets="mini_train mini_test"
[ -n "$n_val" ] && [ "$n_val" -eq 0 ] || sets="$sets mini_val"
$real_test && sets="$sets real_test"
version=4
if $real_voices; then
  version=5
  [ "$n_real_test" -gt 0 ] && sets="$sets real2_test"
fi
params="version=$version seed=$seed voices=$voices utts_per_spk=$utts_per_spk n_test=$n_test n_val=$n_val"
params="$params real_test=$real_test real_max_utts=$real_max_utts"
$real_voices && params="$params real_train_utts=$real_train_utts n_real_val=$n_real_val n_real_test=$n_real_test"
$rhvoice && params="$params rhvoice=true rhv_voices=$rhv_voices n_rhv_val=$n_rhv_val"
$pico && params="$params pico=true n_pico_val=$n_pico_val"
$festival && params="$params festival=true n_festival_val=$n_festival_val"
stamp=$data/.mini_corpus.done
summary=$data/mini_audio/summary.txt

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$params" ]; then
  complete=true
  for s in $sets; do [ -f "$data/$s/wav.scp" ] || complete=false; done
  if $complete; then
    echo "$0: mini corpus in $data is complete ($params); skipping. Remove $stamp to rebuild."
    cat "$summary"
    exit 0
  fi
fi

# Anything from an earlier or interrupted build goes: a partial corpus must never look complete.
rm -f "$stamp"
rm -rf "$data/mini_train" "$data/mini_val" "$data/mini_test" "$data/real_test" "$data/real2_test" \
  "$data/mini_audio"
mkdir -p "$data/mini_audio"

# --- fetch what is missing (cached in $download_dir; nothing is installed) ----------------------
tools=()
command -v espeak-ng >/dev/null 2>&1 || tools+=(espeak-ng)
command -v mbrola >/dev/null 2>&1 || tools+=(mbrola)
if [ ${#tools[@]} -gt 0 ]; then
  "$local_dir/fetch_debs.sh" --with-deps true "$download_dir/tools" "${tools[@]}"
fi
mapfile -t pkgs < <(python -m dmha.bin.make_mini_corpus --print-packages --voices "$voices" \
                      --real-test "$real_test" --real-voices "$real_voices" "$data")
voice_pkgs=(); prompt_pkgs=(); real_pkgs=()
for p in "${pkgs[@]}"; do
  case "$p" in
    mbrola-*) voice_pkgs+=("$p") ;;
    asterisk-*) prompt_pkgs+=("$p") ;;
    *) real_pkgs+=("$p") ;;
  esac
done
"$local_dir/fetch_debs.sh" "$download_dir/mbrola" "${voice_pkgs[@]}"
[ ${#prompt_pkgs[@]} -gt 0 ] && "$local_dir/fetch_debs.sh" "$download_dir/asterisk" "${prompt_pkgs[@]}"
if [ ${#real_pkgs[@]} -gt 0 ]; then
  t_fetch=$(date +%s)
  # A package that cannot be fetched or unpacked stops the build here (fetch_debs.sh names it); no
  # stamp is written, so nothing half-built looks complete.
  "$local_dir/fetch_debs.sh" "$download_dir/real" "${real_pkgs[@]}"
  echo "$0: real-voice packages ready in $(( $(date +%s) - t_fetch )) s" >&2
fi
if $rhvoice; then
  t_fetch=$(date +%s)
  # $(...), not <(...): an unknown --rhv-voices name must stop the script here.
  rhv_list=$(python -m dmha.bin.make_mini_corpus --print-rhvoice-packages --rhv-voices "$rhv_voices" "$data")
  mapfile -t rhv_pkgs <<< "$rhv_list"
  # With their dependencies: a bare machine also needs libsonic0, libpulse0 and what they pull in.
  "$local_dir/fetch_debs.sh" --with-deps true "$download_dir/rhvoice" "${rhv_pkgs[@]}"
  echo "$0: RHVoice packages ready in $(( $(date +%s) - t_fetch )) s" >&2
fi
if $festival; then
  t_fetch=$(date +%s)
  fest_list=$(python -m dmha.bin.make_mini_corpus --print-festival-packages "$data")   # $(...): a failure stops here
  mapfile -t fest_pkgs <<< "$fest_list"
  # With their dependencies: Festival's libraries, lexicons and language packages.
  "$local_dir/fetch_debs.sh" --with-deps true "$download_dir/festival" "${fest_pkgs[@]}"
  echo "$0: Festival/Flite packages ready in $(( $(date +%s) - t_fetch )) s" >&2
fi
if $pico && ! python -c "import py_nanotts" 2>/dev/null; then
  # The voices and the synthesizer come in one PyPI wheel; pip's cache serves reruns.
  python -m pip install -q "py-nanotts==0.1.1"
fi

# --- build ---------------------------------------------------------------------------------------
opts=(--seed "$seed" --nj "$nj" --voices "$voices" --utts-per-spk "$utts_per_spk" --real-test "$real_test"
      --real-max-utts "$real_max_utts" --download-dir "$download_dir" --real-voices "$real_voices"
      --real-train-utts "$real_train_utts" --n-real-val "$n_real_val" --n-real-test "$n_real_test"
      --rhvoice "$rhvoice" --rhv-voices "$rhv_voices" --n-rhv-val "$n_rhv_val"
      --pico "$pico" --n-pico-val "$n_pico_val" --festival "$festival" --n-festival-val "$n_festival_val")
[ -n "$n_test" ] && opts+=(--n-test "$n_test")
[ -n "$n_val" ] && opts+=(--n-val "$n_val")
python -m dmha.bin.make_mini_corpus "${opts[@]}" "$data" > "$summary.tmp"

for s in $sets; do
  "$utils_dir/validate_data_dir.sh" --no-feats "$data/$s"
done
mv "$summary.tmp" "$summary"
cat "$summary"
echo "$params" > "$stamp"   # written last: the corpus is complete
