"""Stage 5, scoring: cosine scores of trial lists (S-norm / AS-norm), EER and minDCF, results, DET plots,
and score calibration (cosine -> log-likelihood ratio; Cllr, min Cllr, actual DCF).

Reads embeddings (kaldiio scp/ark) and Kaldi trial lists; writes ``scores/<set>.score``, ``results``
and DET plot PNGs. Open first: :mod:`dmha.scoring.cosine`, then :mod:`dmha.scoring.metrics`
(:mod:`dmha.scoring.calibration` fits the LLR map);
:mod:`dmha.scoring.results` and :mod:`dmha.scoring.det_plot` write what users read.
"""
