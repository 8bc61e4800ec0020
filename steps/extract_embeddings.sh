#!/usr/bin/env bash
# steps/extract_embeddings.sh — stage 4: whole-utterance speaker embeddings of a data dir.
#
# Writes <emb-dir>/xvector.{ark,scp} (one 400-d float32 vector per utterance, kaldiio/Kaldi readable),
# <emb-dir>/spk_xvector.{ark,scp} (per speaker: mean of the L2-normalised utterance embeddings, the
# S-norm/AS-norm cohort of steps/score.sh), <emb-dir>/num_utts.ark (text: speaker count) and the job
# logs <emb-dir>/log/extract.JOB.log.
set -euo pipefail

nj=4                 # parallel jobs (utterances split with "$DMHA_ROOT/utils/split_data.sh" --per-utt)
cmd=local            # job backend of utils/launch.sh: local | slurm
device=auto          # auto | cpu | cuda | cuda:N
batch_frames=0       # padded frames per batch (0: 20000 on CUDA, 2000 on CPU)
batch_size=64        # utterances per batch
max_chunk_frames=0   # 0: no cap; N: longer utterances -> mean of L2-normalised N-frame-chunk embeddings
num_threads=0        # torch CPU threads per job (0: cores / nj)
force=false          # true: recompute even if the outputs are up to date
model=best.pt        # weights file in <exp-dir>: best.pt, or an average (steps/average_models.sh)
backend=torch        # torch: <exp-dir>/<model> | onnx: the exported model on onnxruntime (no torch)
onnx_model=          # --backend onnx: the .onnx file (default <exp-dir>/onnx/model.onnx)

help_message="Usage: $0 [options] <exp-dir> <data-dir> <emb-dir>
  Embeds every utterance of <data-dir>/feats.scp (stage 1 features) with the best model of <exp-dir>
  (<exp-dir>/best.pt; feature and model settings from <exp-dir>/config.yaml), in length-sorted, padded,
  masked batches (results do not depend on the batch size), and writes to <emb-dir>:
    xvector.ark/scp      utterance embeddings (read with kaldiio.load_scp; absolute ark paths)
    spk_xvector.ark/scp  per-speaker mean of the L2-normalised utterance embeddings
    num_utts.ark         utterances per speaker (text)
    log/extract.JOB.log  per-job logs (progress, settings)
  Outputs are up to date when model, features and --max-chunk-frames are unchanged: a re-run then
  skips (and says so). Otherwise old outputs are removed first and new ones renamed into place at the
  end, so a killed run never leaves outputs that look complete.
Options:
  --nj N                  parallel jobs (default $nj; at most the number of utterances)
  --cmd local|slurm       job backend (default $cmd)
  --device DEV            auto | cpu | cuda | cuda:N (default $device)
  --batch-frames N        padded frames per batch (default $batch_frames)
  --batch-size N          utterances per batch (default $batch_size)
  --max-chunk-frames N    length cap: an utterance of T > N frames is CMN'd whole, cut into ceil(T/N)
                          chunks of equal length and embedded as the mean of the L2-normalised chunk
                          embeddings; 0 = no cap (default $max_chunk_frames)
  --num-threads N         torch threads per job on CPU (default: cores / nj)
  --force true|false      recompute even if up to date (default $force)
  --model FILE            weights file in <exp-dir> (default $model), e.g. avg_last5.pt written by
                          steps/average_models.sh
  --backend torch|onnx    torch: <exp-dir>/<model>; onnx: the model of steps/export_onnx.sh on
                          onnxruntime, same ark/scp (default $backend; no --max-chunk-frames)
  --onnx-model FILE       --backend onnx: the .onnx file (default <exp-dir>/onnx/model.onnx; an
                          int8 model: <exp-dir>/onnx/model.int8.onnx)
Example:
  $0 --nj 4 exp/mini_dmha data/mini_test exp/mini_dmha/embeddings/mini_test"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
exp=$1
data=$2
dir=$3

tool=(python -m dmha.bin.extract_embeddings)
case "$backend" in torch|onnx) ;; *) echo "$0: --backend must be torch or onnx, got '$backend'" >&2; exit 1 ;; esac
be_opts=(--backend "$backend" --onnx-model "$onnx_model" --model "$model")
model_desc="$exp/$model"
[ "$backend" = onnx ] && model_desc="${onnx_model:-$exp/onnx/model.onnx} (onnxruntime)"
if [ "$force" = true ]; then
  rm -f "$dir/.extract_info"
elif [ "$force" != false ]; then
  echo "$0: --force must be true or false, got '$force'" >&2; exit 1
fi
rc=0
"${tool[@]}" prepare "${be_opts[@]}" --max-chunk-frames "$max_chunk_frames" "$exp" "$data" "$dir" || rc=$?
if [ "$rc" -eq 10 ]; then
  echo "$0: $dir is up to date (model $model_desc, features $data/feats.scp); skipping (--force true to redo)"
  exit 0
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi

n_utts=$(wc -l < "$data/feats.scp")
[ "$n_utts" -ge 1 ] || { echo "$0: $data/feats.scp is empty; nothing to embed" >&2; exit 1; }
[ "$nj" -gt "$n_utts" ] && nj=$n_utts
if [ "$num_threads" -eq 0 ]; then
  cores=$(nproc 2>/dev/null || echo 1)
  num_threads=$(( cores / nj )); [ "$num_threads" -ge 1 ] || num_threads=1
fi

mkdir -p "$dir/log" "$dir/jobs"
"$DMHA_ROOT/utils/split_data.sh" --per-utt "$data" "$nj" >/dev/null
echo "$0: embedding $n_utts utterances of $data with $model_desc ($nj jobs, device $device); logs in $dir/log"
# Ask the backend (Slurm) for what each job uses: its CPU threads and, on CUDA, one GPU.
gpu_opt=()
case "$device" in cuda*) gpu_opt=(--gpu 1) ;; esac
"$DMHA_ROOT/utils/launch.sh" --backend "$cmd" --num-threads "$num_threads" "${gpu_opt[@]}" \
  "JOB=1:$nj" "$dir/log/extract.JOB.log" \
  "${tool[@]}" job "${be_opts[@]}" --device "$device" --batch-frames "$batch_frames" --batch-size "$batch_size" \
    --max-chunk-frames "$max_chunk_frames" --num-threads "$num_threads" \
    "$exp" "$data/split$nj/JOB" "$dir/jobs/xvector.JOB.ark" "$dir/jobs/xvector.JOB.scp"
"${tool[@]}" merge "${be_opts[@]}" --nj "$nj" --max-chunk-frames "$max_chunk_frames" "$exp" "$data" "$dir" 2>&1 \
  | tee "$dir/log/merge.log"
