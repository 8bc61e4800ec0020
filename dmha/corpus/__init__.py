"""Stage 0, corpus preparation: the embedded default corpus "mini", and VoxCeleb.

Writes Kaldi data dirs (``wav.scp``, ``utt2spk``, ``spk2utt``) and ``trials`` for the train, validation
and test sets. "mini": MBROLA voices driven by espeak-ng (:mod:`dmha.corpus.voices`, ``text``, ``synth``),
varied with :mod:`dmha.augment`, plus real telephone prompts (:mod:`dmha.corpus.asterisk`) as a
cross-domain test set. Open first: :mod:`dmha.corpus.mini` (or :mod:`dmha.corpus.voxceleb_prep`).
:mod:`dmha.corpus.augmented` derives training data dirs from any data dir: augmented copies (reverb,
noise, music, babble) and speed-perturbed copies, as wav.scp pipes.
"""
