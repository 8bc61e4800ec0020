"""Corpus preparation (stage 0).

The embedded default corpus "mini" (``voices``, ``text``, ``synth``, ``augment``, ``mini``, ``asterisk``):
MBROLA voices driven by espeak-ng, augmented with noise and reverberation, plus real telephone prompts
(Asterisk) as a cross-domain test set. Other corpora (VoxCeleb) have their own modules here.
"""
