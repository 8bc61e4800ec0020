# egs/mini/corpus.sh — the embedded default corpus "mini" (sourced by run.sh after option parsing).
# Synthetic voices (MBROLA databases driven by espeak-ng, one real person each) with noise and reverb,
# plus real telephone speech (Asterisk prompts) as a cross-domain test. Built by stage 0.
train_set=mini_train
val_set=mini_val
test_sets="mini_test real_test"
default_config=egs/mini/conf/dmha.yaml

prepare_corpus() {
  # shellcheck disable=SC2086  # --mini-opts of run.sh: several options, split on purpose
  local/make_mini_corpus.sh --seed "$seed" --nj "$nj" ${mini_opts:-} data
}
