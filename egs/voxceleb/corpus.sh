# egs/voxceleb/corpus.sh — VoxCeleb (bring your own copy; sourced by run.sh after option parsing).
# Train on VoxCeleb2 dev (minus a few held-out validation speakers), test on the official VoxCeleb1
# lists, as in the paper. Stage 0 needs run.sh's --vox1 and --vox2 (and --trials-dir if the trial
# lists are not in the --vox1 dir); see local/prepare_voxceleb.sh --help for the expected layout.
#
# Test sets (data/<set>/trials; the paper's protocol: 37,611 / 581,480 / 552,536 trials):
#   vox1_O = veri_test2.txt (cleaned)   vox1_E = list_test_all.txt   vox1_H = list_test_hard.txt
# Also prepared when their list files exist (add them with VOX_TEST_SETS): vox1_O_orig (veri_test.txt),
# vox1_E_clean (list_test_all2.txt), vox1_H_clean (list_test_hard2.txt).
#
# Knobs (environment; run.sh has no options for them):
#   VOX_PREP_OPTS  extra options for local/prepare_voxceleb.sh (or run.sh --vox-opts), e.g.
#                  "--m4a-mode convert --val-speakers 100 --max-missing-pct 0" (a run.sh option
#                  --vox-opts, if run.sh defines vox_opts, is used the same way)
#   VOX_TEST_SETS  test sets to extract and score (default "vox1_O vox1_E vox1_H")
train_set=vox2_train
val_set=vox2_val
test_sets=${VOX_TEST_SETS:-"vox1_O vox1_E vox1_H"}
default_config=egs/voxceleb/conf/dmha_k32.yaml
# Features as Kaldi 2-byte compressed matrices (CM2): half the disk of float32 (136 instead of 272 GB for
# VoxCeleb2 dev) and read partially by training; on the mini recipe over 5 training seeds its EER was
# within the seed spread of float32 (README "Scaling"). run.sh --feat-storage float32 keeps float32.
default_feat_storage=cm2
# Scoring as in the paper: plain cosine (no back-end); --score-backend plda or lda (Kaldi x-vector style) or mean are
# one option away; stage 4 then also embeds the training set (2.4 M utterances with vox2: hours on a GPU).
default_score_backend=none

# All test sets draw their audio from data/vox1 (every one is a subset of it): a run.sh that
# computes features/embeddings once per data set can call this to map a test set to it.
test_data_of() { echo vox1; }

prepare_corpus() {
  if [ -z "${vox1:-}" ] || [ -z "${vox2:-}" ]; then
    echo "run.sh: --corpus voxceleb needs --vox1 <VoxCeleb1 dir> and --vox2 <VoxCeleb2 dir> (see README, VoxCeleb)" >&2
    return 1
  fi
  local opts=(--vox1 "$vox1" --vox2 "$vox2" --nj "$nj" --seed "$seed")
  [ -n "${trials_dir:-}" ] && opts+=(--trials-dir "$trials_dir")
  # shellcheck disable=SC2086  # lists of options
  local/prepare_voxceleb.sh "${opts[@]}" ${vox_opts:-} ${VOX_PREP_OPTS:-} data
  local set
  for set in $test_sets; do
    [ -f "data/$set/trials" ] || { echo "run.sh: test set $set was not prepared (no data/$set/trials): is its official list in ${trials_dir:-$vox1}?" >&2; return 1; }
  done
}
