#!/usr/bin/env bash
# steps/export_onnx.sh — deployment: the exp's model as ONNX, run with onnxruntime (no torch).
set -euo pipefail

opset=17
quantize=none       # none | int8
calib_data=         # data dir with feats.scp for the int8 calibration (e.g. data/mini_train)
model=best.pt       # weights file in <exp-dir> to export (best.pt, or an average: avg_last5.pt)
winograd=auto       # auto | off | all: 3x3 convolutions of the float graph as Winograd F(m x m, 3 x 3)

help_message="Usage: $0 [options] <exp-dir>
  Writes <exp-dir>/onnx/model.onnx: raw log-mels (batch, frames, n_mels) + lengths (batch,) in,
  embeddings (batch, embed_dim) out, per-utterance CMN inside the graph, dynamic batch and frame axes;
  the feature settings of <exp-dir>/config.yaml and the decision threshold are in its metadata.
  The export is checked against torch on a padded batch before anything is written.
Options:
  --opset N               ONNX opset, >= 14 (default $opset)
  --quantize none|int8    also write model.int8.onnx (static int8, calibrated on --calib-data)
  --calib-data DIR        data dir with feats.scp for the int8 calibration (e.g. the training set)
  --model NAME            weights file in <exp-dir> to export (default $model; e.g. avg_last5.pt)
  --winograd auto|off|all the float graph computes wide 3x3 convolutions as Winograd F(4x4 or 2x2, 3x3):
                          auto (default) where it pays on CPU (>= 128 in, >= 256 out channels: the paper
                          model's 6 wide layers, none of the mini model's), off, or all; same results to
                          float rounding (checked against torch at export); use off for GPU/vendor
                          execution providers, which pick their own convolution algorithms
Run the result with: dmha-embed --onnx <exp-dir>/onnx/model.onnx ..., dmha-verify --onnx ...,
  steps/extract_embeddings.sh --backend onnx ...
Example:
  $0 --quantize int8 --calib-data data/mini_train exp/mini_dmha"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
opts=(--opset "$opset" --quantize "$quantize")
[ -n "$calib_data" ] && opts+=(--calib-data "$calib_data")
opts+=(--model "$model" --winograd "$winograd")
python -m dmha.bin.export_onnx "${opts[@]}" "$1"
