# egs/mini/corpus.sh — the embedded default corpus "mini" (sourced by run.sh after option parsing).
# Synthetic voices (MBROLA databases driven by espeak-ng, one real person each) with noise and reverb,
# plus real telephone speech (Asterisk prompts) as a cross-domain test; with --real-voices true (version 5)
# recorded human voices from Debian packages in training/validation and a test set real2_test. Stage 0.
train_set=mini_train
val_set=mini_val
test_sets="mini_test real_test"
# Corpus version 5 (--mini-opts "--real-voices true") adds real speakers to train/val and a real2_test.
case " ${mini_opts:-} " in
  *" --real-voices true "*) test_sets="$test_sets real2_test" ;;
esac
default_config=egs/mini/conf/dmha.yaml
# Stage 4 fits a mean + LDA + PLDA back-end on mini_train's embeddings and stage 5 scores with it beside
# plain cosine: 52 training speakers leave within-speaker directions that LDA removes, and PLDA weighs the
# rest by their speaker information (README, "Scoring back-end").
default_score_backend=plda

prepare_corpus() {
  # shellcheck disable=SC2086  # --mini-opts of run.sh: several options, split on purpose
  local/make_mini_corpus.sh --seed "$seed" --nj "$nj" ${mini_opts:-} data
}
