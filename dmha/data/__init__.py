"""Kaldi data directories and lists: stage 0's output format and stage 2's training lists.

Reads and writes ``wav.scp``, ``utt2spk``/``spk2utt``, ``feats.scp``, ``trials`` (validate, fix,
subset, split, combine) and, in stage 2, ``data/<train>/lists/``. Open first: :mod:`dmha.data.datadir`;
then :mod:`dmha.data.trials` and :mod:`dmha.data.lists`.
"""
