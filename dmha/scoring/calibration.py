"""Score calibration: an affine map from cosine scores to log-likelihood ratios (LLRs).

Why: a cosine score says "more or less alike" but not how much evidence it is. A calibrated LLR,
``log p(score | same speaker) / p(score | different speakers)``, is: the Bayes decision for a target
prior ``P_t`` and costs ``C_miss``/``C_fa`` is ``accept when LLR >= log(C_fa (1 - P_t) / (C_miss P_t))``
(:func:`bayes_threshold`), for any prior, with no threshold to tune. This is what the actual DCF and Cllr
(:mod:`dmha.scoring.metrics`) measure.

The map is ``llr = scale * score + offset``, fitted by **prior-weighted logistic regression** (Brümmer's
FoCal / BOSARIS recipe) on the validation trials (held out from training, never a test set): the target
and non-target trials are weighted ``P/N_target`` and ``(1-P)/N_nontarget``, so the fit minimises the
cross-entropy at the effective prior ``P`` whatever the proportion of targets in the trial list, and the
fitted log-odds minus ``logit(P)`` is an LLR. Plain (unweighted) logistic regression would tie the fit to
the trial list's own target proportion (50% in the mini recipe, 0.1-1% in others); weighting makes the
choice of operating region explicit. The default ``P = 0.5`` makes the objective exactly Cllr (the
prior-free summary); dmha.bin.compute_threshold's ``--fit-prior`` changes it (see the README for the
measured effect). The solver is scikit-learn's LogisticRegression without regularisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open

DEFAULT_FIT_PRIOR = 0.5


def logit(p: float) -> float:
    """log(p / (1 - p)) for 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise UserError(f"a prior must be in (0, 1), got {p}")
    return math.log(p) - math.log1p(-p)


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """LLR threshold of the minimum-expected-cost decision: accept when ``llr >= log(C_fa(1-P)/(C_miss P))``.

    With the DCF's unit costs this is ``-logit(P_target)`` (4.595 for P_target = 0.01).
    """
    if c_miss <= 0 or c_fa <= 0:
        raise UserError(f"c_miss and c_fa must be positive, got {c_miss}, {c_fa}")
    return -logit(p_target) + math.log(c_fa) - math.log(c_miss)


@dataclass(frozen=True)
class Calibration:
    """``llr = scale * score + offset``, with where it came from (``info``: prior, trials, model, ...)."""

    scale: float
    offset: float
    info: dict[str, Any] = field(default_factory=dict)

    def llr(self, scores) -> np.ndarray | float:
        """Log-likelihood ratios of raw scores (an array or one float)."""
        if np.ndim(scores) == 0:
            return float(self.scale * float(scores) + self.offset)
        return self.scale * np.asarray(scores, dtype=np.float64) + self.offset

    def score_threshold(self, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
        """The raw-score threshold equivalent to the Bayes LLR threshold (``scale > 0``)."""
        return (bayes_threshold(p_target, c_miss, c_fa) - self.offset) / self.scale

    def with_info(self, info: dict[str, Any]) -> Calibration:
        return replace(self, info=dict(info))


def fit_calibration(scores, labels, prior: float = DEFAULT_FIT_PRIOR) -> Calibration:
    """Fit ``llr = scale * score + offset`` by logistic regression weighted to the effective ``prior``.

    ``labels``: 1/True for target trials. Raises UserError for trials of one class only, or when the
    scores do not separate the classes in the right direction (fitted scale <= 0).
    """
    from sklearn.linear_model import LogisticRegression

    from dmha.scoring.metrics import _check_inputs

    scores, labels = _check_inputs(scores, labels)
    lo = logit(prior)
    n = labels.size
    n_target = int(labels.sum())
    n_nontarget = n - n_target
    # Class weights P/N_t and (1-P)/N_n, rescaled to sum to N so that lbfgs's tolerances keep their meaning.
    weights = np.where(labels, prior / n_target, (1.0 - prior) / n_nontarget) * n
    # Centre and scale the scores for the solver, then map the coefficients back.
    mu, sd = float(scores.mean()), float(scores.std())
    if not sd > 0:
        raise UserError(f"all {n} scores are equal ({mu}); nothing to calibrate")
    x = ((scores - mu) / sd).reshape(-1, 1)
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    model.fit(x, labels.astype(int), sample_weight=weights)
    a = float(model.coef_[0, 0]) / sd
    b = float(model.intercept_[0]) - a * mu - lo
    if not (a > 0 and math.isfinite(a) and math.isfinite(b)):
        raise UserError(f"calibration failed: fitted scale {a:.4g} (target scores are not higher than "
                        "non-target ones on these trials); check the model and the trial labels")
    return Calibration(scale=a, offset=b, info={"fit_prior": float(prior), "n_target": n_target,
                                                "n_nontarget": n_nontarget})


_NOTE = ("llr = scale * score + offset is a log-likelihood ratio; accept (same speaker) when llr >= "
         "log((1 - p_target) / p_target) for a target prior p_target (Bayes decision, unit costs)")


def write_calibration_file(path: PathLike, cal: Calibration) -> Path:
    """Write ``scale``, ``offset`` and ``cal.info`` as YAML, atomically."""
    import yaml

    data = {"scale": float(cal.scale), "offset": float(cal.offset)}
    data.update({k: v for k, v in cal.info.items() if k not in data})
    data["note"] = _NOTE
    path = Path(path)
    with atomic_open(path) as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def read_calibration_file(path: PathLike) -> Calibration:
    """Read a file written by :func:`write_calibration_file` (UserError naming the file if it is not one)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: calibration file not found (written by steps/compute_threshold.sh)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        scale, offset = float(data["scale"]), float(data["offset"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path}: not a calibration file (expected 'scale:' and 'offset:'); delete it and "
                        "re-run steps/compute_threshold.sh") from None
    if not (math.isfinite(scale) and math.isfinite(offset) and scale > 0):
        raise UserError(f"{path}: scale {scale} / offset {offset} are not a valid calibration (need finite "
                        "values, scale > 0); re-run steps/compute_threshold.sh")
    info = {k: v for k, v in data.items() if k not in ("scale", "offset", "note")}
    return Calibration(scale, offset, info)
