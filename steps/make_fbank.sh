#!/usr/bin/env bash
# make_fbank.sh — stage 1: log-mel ("mfsc") features of a data dir into ark/scp files, --nj jobs.
set -euo pipefail
nj=4
cmd=local
force=false
max_bad_frac=0.05
feat_config=
device=cpu
storage=float32
help_message="Usage: $0 [options] <data-dir> [<log-dir> [<ark-dir>]]
  Computes the paper's log-mel features (dmha.features.fbank) of every utterance of <data-dir>/wav.scp and
  writes <data-dir>/feats.scp and utt2num_frames (kaldiio-readable), the arks in <ark-dir>
  (default <data-dir>/data), per-job logs in <log-dir> (default <data-dir>/log).
  Bad audio (missing/empty/corrupt file, failing pipe, NaN/Inf, shorter than one frame) is listed in
  <data-dir>/bad_utts as 'utt reason' and dropped from the data dir (originals in <data-dir>/.backup/);
  trials are kept unchanged. Stereo is mixed down, other sample rates resampled (both logged).
  Complete, up-to-date features are not recomputed; a killed run resumes (finished jobs are kept).
Options:
  --nj N               parallel jobs (default $nj)
  --cmd local|slurm    job backend of utils/launch.sh (default $cmd)
  --force true|false   recompute even if feats.scp is complete (default $force)
  --max-bad-frac F     fail (dropping nothing, writing no feats.scp) if more than this fraction of the
                       utterances is bad (default $max_bad_frac)
  --feat-config FILE   YAML with the feature settings (its features: section); default: the paper's
  --device DEV         cpu (default), auto, cuda, cuda:N
  --storage S          float32 (default), cm2 (Kaldi 2-byte compressed matrices: half the disk, lossy
                       ~2e-4) or cm3 (1 byte); training crops all three partially (train.partial_reads)
Example: $0 --nj 8 data/voxceleb1_test"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/../utils/parse_options.sh"
if [ $# -lt 1 ] || [ $# -gt 3 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi

data=${1%/}
logdir=${2:-$data/log}
arkdir=${3:-$data/data}
name=$(basename "$data")
utils=$(dirname "$0")/../utils
cfg_opt=()
[ -n "$feat_config" ] && cfg_opt=(--config "$feat_config")

if [ -f "$data/wav.scp" ]; then
  n_utts=$(wc -l < "$data/wav.scp")
  [ "$nj" -gt "$n_utts" ] && [ "$n_utts" -gt 0 ] && nj=$n_utts
fi
rc=0
python -m dmha.bin.fbank_stage prepare ${cfg_opt[@]+"${cfg_opt[@]}"} --nj "$nj" --force "$force" \
  --storage "$storage" \
  "$data" "$arkdir" || rc=$?
if [ $rc -eq 10 ]; then
  echo "$0: $data/feats.scp is complete and up to date; skipping (--force true recomputes)"
  exit 0
fi
[ $rc -eq 0 ] || exit $rc

"$utils/validate_data_dir.sh" --no-feats --no-trials "$data" >/dev/null   # input: names all problems
mkdir -p "$logdir"
"$utils/split_data.sh" --per-utt "$data" "$nj"

echo "$0: computing features of $(wc -l < "$data/wav.scp") utterances of $data with $nj jobs" \
  "(logs: $logdir/make_fbank_$name.*.log)"
job=$arkdir/raw_fbank_$name.JOB
"$utils/launch.sh" --backend "$cmd" JOB=1:"$nj" "$logdir/make_fbank_$name.JOB.log" \
  python -m dmha.bin.compute_fbank ${cfg_opt[@]+"${cfg_opt[@]}"} --device "$device" --storage "$storage" \
    --bad-utts "$job.bad" --notes "$job.notes" --utt2num-frames "$job.frames" \
    "$data/split$nj/JOB/wav.scp" "$job.ark" "$job.scp"

python -m dmha.bin.fbank_stage combine ${cfg_opt[@]+"${cfg_opt[@]}"} --nj "$nj" --storage "$storage" \
  --max-bad-frac "$max_bad_frac" "$data" "$arkdir"
# Trials are never edited: with dropped utterances some may name them (counted in the summary above).
val_opt=()
[ -f "$data/bad_utts" ] && val_opt=(--no-trials)
"$utils/validate_data_dir.sh" ${val_opt[@]+"${val_opt[@]}"} "$data"
echo "$0: done: $data/feats.scp"
