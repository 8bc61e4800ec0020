#!/usr/bin/env bash
# steps/score.sh — cosine-score a trial list with extracted embeddings; print and log EER / minDCF.
#
# Writes <score-file> (`enroll test score target|nontarget`), a DET curve <score-file stem>.det.png,
# and appends one line to --results (and a row to <results>.tsv, read by dmha.bin.summarize_results).
set -euo pipefail

norm=none            # none | snorm | asnorm
cohort=              # cohort embeddings for s/as-norm: spk_xvector.scp of the training set
top_n=300            # AS-norm: highest cohort scores kept per side
allow_missing=false  # true: skip trials whose embedding is missing (counted in the results)
results=             # default: <score-file dir>/../results
name=                # test set name in the results (default: score file name without .score)
calibration=         # calibration.yaml of the exp (steps/compute_threshold.sh): adds LLRs, Cllr, actual DCF
backend=             # back-end dir of the exp (steps/train_backend.sh): mean + LDA [+ PLDA] before scoring
enroll=              # enrolment models (spk2utt format): the trials' first column names models

help_message="Usage: $0 [options] <trials> <emb-dir> <score-file>
  Scores every trial of <trials> (enroll test [target|nontarget]) by cosine similarity of the
  embeddings in <emb-dir>/xvector.scp (or <emb-dir> itself if it is an .scp file).
Options:
  --norm none|snorm|asnorm   score normalisation (default $norm)
  --cohort <scp>             cohort for snorm/asnorm, e.g. exp/<name>/embeddings/<train>/spk_xvector.scp
  --top-n N                  AS-norm cohort size per side (default $top_n)
  --allow-missing true|false skip trials without embeddings instead of failing (default $allow_missing)
  --results <file>           results log to append to (default <score-file dir>/../results)
  --name <set>               name of the test set in the results (default <score-file> without .score)
  --backend <dir>            <exp>/backend (steps/train_backend.sh): embeddings (and cohort) are
                             length-normalised, centred and LDA-projected before cosine scoring
  --enroll <spk2utt>         enrolment models ('model utt1 utt2 ...'): the trials' first column names
                             models, each the mean of its utterances' embeddings in <emb-dir> (with a
                             PLDA back-end scored by the count of utterances, as Kaldi's --num-utts)
  --calibration <file>       <exp>/calibration.yaml (fitted on validation trials by
                             steps/compute_threshold.sh): also writes <score-file stem>.llr and reports
                             Cllr, min Cllr and the actual DCF at the Bayes thresholds (0.01, 0.001)
Example:
  steps/score.sh data/mini_test/trials exp/mini_dmha/embeddings/mini_test exp/mini_dmha/scores/mini_test.score"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
trials=$1
emb=$2
score_file=$3

opts=(--norm "$norm" --top-n "$top_n" --allow-missing "$allow_missing")
[ -n "$cohort" ] && opts+=(--cohort "$cohort")
[ -n "$results" ] && opts+=(--results "$results")
[ -n "$name" ] && opts+=(--name "$name")
[ -n "$calibration" ] && opts+=(--calibration "$calibration")
[ -n "$backend" ] && opts+=(--backend "$backend")
[ -n "$enroll" ] && opts+=(--enroll "$enroll")

python -m dmha.bin.score "${opts[@]}" "$trials" "$emb" "$score_file"
