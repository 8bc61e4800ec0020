#!/usr/bin/env bash
# steps/train_backend.sh — fit the scoring back-end (global mean + LDA [+ PLDA]) on the training set's embeddings.
set -euo pipefail

kind=lda             # lda (mean + LDA) | plda (mean + LDA + PLDA) | mean (mean subtraction only)
lda_dim=200          # LDA output dim; capped at (training speakers - 1) and the embedding dim
shrinkage=auto       # within-class covariance shrinkage: auto (Ledoit-Wolf) | none | a number in [0, 1]
model=best.pt        # weights file in <exp-dir> the embeddings were extracted with
dir=                 # output dir (default <exp-dir>/backend)

help_message="Usage: $0 [options] <exp-dir> <train-data-dir> <train-emb-dir>
  Fits a back-end on the embeddings of the training data (<train-emb-dir>/xvector.scp, speakers from
  <train-data-dir>/utt2spk) and writes <exp-dir>/backend/:
    mean.vec        global mean of the length-normalised training embeddings (Kaldi binary vector)
    transform.mat   LDA projection, <lda-dim> x <embed-dim> (Kaldi binary matrix; --kind lda, plda)
    plda_{mean.vec,transform.mat,psi.vec}   --kind plda: a two-covariance PLDA on the LDA output in
                    Kaldi's diagonal form (the members of Kaldi's Plda object)
    backend.yaml    kind, dims, counts, and the model whose embeddings they are
  Scoring through it (steps/score.sh --backend <exp-dir>/backend; compute_threshold, dmha-verify,
  dmha.load_model and steps/export_onnx.sh pick it up from the exp dir): length norm, minus mean.vec,
  times transform.mat, length norm, then cosine (--kind plda: the PLDA log-likelihood ratio). Kaldi
  equivalent: ivector-normalize-length | ivector-subtract-global-mean mean.vec | transform-vec
  transform.mat | ivector-normalize-length | cosine scoring (plda: ivector-plda-scoring).
  Fit it on training embeddings only, never on a test set.
Options:
  --kind lda|plda|mean  back-end (default $kind)
  --lda-dim N           LDA output dim (default $lda_dim; capped at speakers - 1)
  --shrinkage X         auto | none | number in [0, 1] (default $shrinkage)
  --model FILE          weights file the embeddings were extracted with (default $model)
  --dir DIR             output dir (default <exp-dir>/backend)
Example:
  $0 exp/mini_dmha data/mini_train exp/mini_dmha/embeddings/mini_train"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
opts=(--kind "$kind" --lda-dim "$lda_dim" --shrinkage "$shrinkage" --model "$model")
[ -n "$dir" ] && opts+=(--dir "$dir")
python -m dmha.bin.train_backend "${opts[@]}" "$1" "$2" "$3"
