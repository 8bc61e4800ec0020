"""The same-speaker decision of one scored trial, shared by the torch API and the torch-free ONNX runtime.

Why one place: ``dmha-verify --exp`` and ``dmha-verify --onnx`` of the same trained model must decide a
trial the same way; the rule below was written in :mod:`dmha.api` alone, and the ONNX runtime compared
the score with the exported threshold even where the exp had a calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmha.common.errors import UserError
from dmha.scoring.calibration import Calibration, bayes_threshold

DEFAULT_P_TARGET = 0.01  # the DCF's target prior (SPEC §4)


@dataclass(frozen=True)
class Verification:
    """The outcome of a verification.

    ``score``: the trial score as stage 5 computes it (cosine similarity; with a ``plda`` back-end the
    PLDA log-likelihood ratio); ``llr``: its calibrated log-likelihood ratio (None without a
    calibration); ``same``: the decision, ``value >= threshold`` where ``basis`` says which value was
    compared ("llr": the Bayes threshold for ``p_target``; "cosine": ``score`` against an EER or
    user-given threshold, whatever the back-end; the name is kept for existing callers).
    """

    score: float
    same: bool
    llr: float | None
    threshold: float
    basis: str
    p_target: float | None = None


def decide(score: float, calibration: Calibration | None, stored_threshold: float | None,
           threshold: float | None = None, p_target: float | None = None,
           no_rule: str = "no decision threshold or calibration") -> Verification:
    """Same speaker? The first rule that applies:

    1. ``threshold`` given: ``score >= threshold``;
    2. a ``calibration``: its LLR >= the Bayes threshold of ``p_target`` (default 0.01; unit costs);
    3. ``stored_threshold`` (the EER point of the validation trials): ``score >= it``;

    else a UserError with ``no_rule`` (which says what to run or pass).
    """
    s = float(score)
    llr = None if calibration is None else float(calibration.llr(s))
    if threshold is not None:
        return Verification(s, s >= float(threshold), llr, float(threshold), "cosine")
    if calibration is not None:
        p = DEFAULT_P_TARGET if p_target is None else float(p_target)
        theta = bayes_threshold(p)
        return Verification(s, llr >= theta, llr, theta, "llr", p)
    if stored_threshold is None:
        raise UserError(no_rule)
    return Verification(s, s >= float(stored_threshold), None, float(stored_threshold), "cosine")
