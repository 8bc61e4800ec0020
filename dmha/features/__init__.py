"""Stage 1, features: audio reading and the paper's 80-dim log-mel filterbanks, with per-utterance CMN.

Reads a data dir's ``wav.scp`` (files or Kaldi pipes); writes ``feats.scp``, ``utt2num_frames``, ark
files and ``fbank.yaml``. Open first: :mod:`dmha.features.fbank` (the one log-mel implementation shared
by training, extraction and the API); then :mod:`dmha.features.stage` (the resumable stage) and
:mod:`dmha.features.audio`, :mod:`dmha.features.config`; for training at scale
:mod:`dmha.features.cmn_table` (per-utterance CMN side tables) and :mod:`dmha.features.arkrows` (reading
only a crop's rows of an ark).
"""
