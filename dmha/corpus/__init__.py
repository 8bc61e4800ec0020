"""Builders of the embedded default corpus "mini": MBROLA voices driven by espeak-ng, augmented with
noise and reverberation, plus real telephone prompts (Asterisk) as a cross-domain test set."""
