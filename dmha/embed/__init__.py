"""Stage 4, embeddings: batched, padding-invariant extraction of speaker embeddings (x-vectors).

Reads a trained model and feature archives; ``dmha.bin.extract_embeddings`` writes
``xvector.{ark,scp}`` and per-speaker means ``spk_xvector.{ark,scp}``. Open first:
:mod:`dmha.embed.xvectors` (whole utterances or capped chunks), built on :mod:`dmha.embed.batched`.
"""
