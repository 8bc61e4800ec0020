"""Verification metrics: EER, normalised minDCF and DET points, exact and O(N log N).

Why this module exists instead of a threshold grid (what the reference implementation did, with a
0.01 step): a grid is both slow (one pass over all trials per threshold) and wrong in the low-error
region that matters. Here every metric comes from ONE sort of the scores: cumulative label counts give
the miss and false-alarm rates at every distinct score value, which is the full, exact DET curve.

Operating-point convention (the same as ``sklearn.metrics.roc_curve``): a trial is accepted when
``score >= threshold``. Thresholds are only placed between distinct score values — tied scores are
always accepted or rejected together, so ties never create operating points that no threshold could
realise. The curve runs from "accept all" (P_miss = 0, P_fa = 1) to "reject all" (P_miss = 1, P_fa = 0).

Calibration metrics (for log-likelihood-ratio scores, see :mod:`dmha.scoring.calibration`): Cllr, the
minimum Cllr after the optimal monotone (PAV) recalibration, and the actual DCF, the cost of Bayes
decisions made with the LLRs as they are (what a user of ``dmha-verify`` pays). minDCF <= actual DCF and
min Cllr <= Cllr; the gaps are the cost of miscalibration.

Validation during training calls :func:`compute_metrics`, so this module imports numpy only (scikit-learn's
isotonic regression is imported by :func:`min_cllr` when it runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmha.common.errors import UserError

__all__ = ["DetPoints", "det_curve", "compute_eer", "compute_min_dcf", "compute_metrics", "cllr", "min_cllr",
           "actual_dcf", "compute_calibration_metrics"]

# P_target values reported by compute_metrics (the paper reports 0.01; 0.001 is the NIST SRE'16+ one).
REPORTED_P_TARGETS = (0.01, 0.001)


@dataclass
class DetPoints:
    """The exact DET curve: one operating point per distinct score value plus "reject all".

    ``fnr`` (P_miss) is non-decreasing and ``fpr`` (P_fa) non-increasing along the arrays;
    ``thresholds[i]`` is the lowest accepted score at point ``i`` (``inf`` for "reject all").
    """

    fpr: np.ndarray
    fnr: np.ndarray
    thresholds: np.ndarray
    n_target: int
    n_nontarget: int


def _check_inputs(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores as a float array, labels as bool) or raise UserError naming the problem."""
    scores = np.asarray(scores)
    if scores.dtype.kind not in "f":
        scores = scores.astype(np.float64)
    scores = scores.ravel()
    labels = np.asarray(labels).ravel()
    if labels.dtype != np.bool_:
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise UserError("trial labels must be boolean or 0/1 (1 = target)")
        labels = labels.astype(bool)
    if scores.shape != labels.shape:
        raise UserError(f"{scores.size} scores but {labels.size} labels; they must be parallel arrays")
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise UserError(f"{bad} of {scores.size} scores are NaN or infinite; check the embeddings")
    n_target = int(np.count_nonzero(labels))
    if n_target == 0:
        raise UserError(f"no target trials among {labels.size}: EER/minDCF need both classes")
    if n_target == labels.size:
        raise UserError(f"no non-target trials among {labels.size}: EER/minDCF need both classes")
    return scores, labels


def group_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last trial of each group of equal scores in ascending ``sorted_scores``: a threshold
    just above that group rejects everything up to and including it (tied scores never split)."""
    is_last = np.empty(sorted_scores.size, dtype=bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=is_last[:-1])
    is_last[-1] = True
    return np.flatnonzero(is_last)


def det_curve(scores, labels) -> DetPoints:
    """Exact miss/false-alarm rates at every threshold between distinct scores (one argsort).

    Memory is O(N): the sort permutation, the sorted scores and labels, one cumulative count array;
    intermediates are freed as soon as possible (bench/bench_metrics.py measures the peak: about
    30 bytes per trial beyond the input, the returned curve included).
    """
    scores, labels = _check_inputs(scores, labels)
    n = scores.size
    # Ascending sort; stability is not needed because tied scores are merged into one group below.
    order = np.argsort(scores)
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    del order
    last = group_ends(sorted_scores)
    n_groups = last.size
    count_dtype = np.int32 if n < 2**31 else np.int64
    targets_below = np.cumsum(sorted_labels, dtype=count_dtype)[last]      # targets rejected
    del sorted_labels
    n_target = int(targets_below[-1])
    n_nontarget = n - n_target
    # Point 0 is "accept all"; point k >= 1 rejects the k lowest groups. Its threshold (the lowest
    # accepted score) is the first score of group k, inf once everything is rejected.
    thresholds = np.empty(n_groups + 1, dtype=np.float64)
    thresholds[0] = sorted_scores[0]
    thresholds[1:n_groups] = sorted_scores[last[:-1] + 1]
    thresholds[n_groups] = np.inf
    del sorted_scores
    fnr = np.empty(n_groups + 1, dtype=np.float64)
    fnr[0] = 0.0
    np.divide(targets_below, n_target, out=fnr[1:])
    # Non-targets still accepted after rejecting groups 0..k-1: n_nontarget - (last + 1 - targets_below).
    last += 1
    last -= targets_below
    del targets_below
    np.subtract(n_nontarget, last, out=last)
    fpr = np.empty(n_groups + 1, dtype=np.float64)
    fpr[0] = 1.0
    np.divide(last, n_nontarget, out=fpr[1:])
    del last
    return DetPoints(fpr=fpr, fnr=fnr, thresholds=thresholds, n_target=n_target, n_nontarget=n_nontarget)


def _eer_from_points(det: DetPoints) -> tuple[float, float]:
    """EER by linear interpolation between the two operating points where FNR crosses FPR."""
    fnr, fpr, thr = det.fnr, det.fpr, det.thresholds
    diff = fnr - fpr                       # goes from -1 (accept all) to +1 (reject all), monotone
    k = int(np.argmax(diff >= 0))          # first point at or past the crossing; k >= 1 since diff[0] = -1
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1)                     # fraction of the segment k-1 -> k where diff == 0
    eer = fnr[k - 1] + t * (fnr[k] - fnr[k - 1])
    if np.isfinite(thr[k]):
        threshold = thr[k - 1] + t * (thr[k] - thr[k - 1])
    else:
        threshold = thr[k - 1]
    return float(eer), float(threshold)


def _min_dcf_from_points(det: DetPoints, p_target: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    """Normalised minimum detection cost over all operating points (it is attained at a vertex)."""
    if not 0.0 < p_target < 1.0:
        raise UserError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise UserError(f"c_miss and c_fa must be positive, got {c_miss}, {c_fa}")
    dcf = c_miss * p_target * det.fnr + c_fa * (1.0 - p_target) * det.fpr
    i = int(np.argmin(dcf))
    c_default = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf[i] / c_default), float(det.thresholds[i])


def compute_eer(scores, labels) -> tuple[float, float]:
    """Equal error rate as a fraction, and the (interpolated) score threshold where it occurs."""
    return _eer_from_points(det_curve(scores, labels))


def compute_min_dcf(scores, labels, p_target: float, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minDCF = min_thr(C_miss P_miss P_t + C_fa P_fa (1-P_t)) / min(C_miss P_t, C_fa (1-P_t)).

    Returns (min_dcf, threshold): accept ``score >= threshold`` to realise it.
    """
    return _min_dcf_from_points(det_curve(scores, labels), p_target, c_miss, c_fa)


def compute_metrics(scores, labels) -> dict:
    """EER (percent) and minDCF at P_target 0.01 and 0.001 from one sort of the scores.

    Keys: ``eer`` (percent), ``mindcf_0.01``, ``mindcf_0.001``, ``n_target``, ``n_nontarget``.
    """
    det = det_curve(scores, labels)
    eer, _ = _eer_from_points(det)
    out = {"eer": 100.0 * eer}
    for p in REPORTED_P_TARGETS:
        out[f"mindcf_{p:g}"] = _min_dcf_from_points(det, p, 1.0, 1.0)[0]
    out["n_target"] = det.n_target
    out["n_nontarget"] = det.n_nontarget
    return out


def _log2_1p_exp(x: np.ndarray) -> np.ndarray:
    """log2(1 + exp(x)) without overflow (inf for x = inf)."""
    return np.logaddexp(0.0, x) / np.log(2.0)


def cllr(llrs, labels) -> float:
    """Log-likelihood-ratio cost (bits): mean over targets of log2(1 + e^-llr), over non-targets of
    log2(1 + e^llr), averaged over the two classes. 0 = perfect; 1 = the uninformative llr = 0."""
    llrs, labels = _check_inputs(llrs, labels)
    llrs = llrs.astype(np.float64)
    return float(0.5 * (_log2_1p_exp(-llrs[labels]).mean() + _log2_1p_exp(llrs[~labels]).mean()))


def _pav_llrs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The optimal monotone map of the scores to LLRs on these trials (pool-adjacent-violators)."""
    from sklearn.isotonic import IsotonicRegression

    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(
        scores.astype(np.float64), labels.astype(np.float64))
    n_target = int(labels.sum())
    prior_log_odds = np.log(n_target) - np.log(labels.size - n_target)
    with np.errstate(divide="ignore"):
        return np.log(posterior) - np.log1p(-posterior) - prior_log_odds


def min_cllr(scores, labels) -> float:
    """Cllr after the best monotone recalibration of ``scores`` (PAV): the discrimination part of Cllr.

    Any scores will do (cosine, normalised, LLRs): only their order matters. Tied scores share one LLR.
    """
    scores, labels = _check_inputs(scores, labels)
    llrs = _pav_llrs(scores, labels)
    # PAV gives -inf only to groups without targets and +inf only to groups without non-targets, so the
    # terms below are finite (0 where an infinity meets the class it favours).
    with np.errstate(over="ignore"):
        t = _log2_1p_exp(-llrs[labels]).mean()
        n = _log2_1p_exp(llrs[~labels]).mean()
    return float(0.5 * (t + n))


def actual_dcf(llrs, labels, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised DCF of the Bayes decisions ``llr >= log(C_fa (1-P) / (C_miss P))`` (accept = target)."""
    llrs, labels = _check_inputs(llrs, labels)
    if not 0.0 < p_target < 1.0:
        raise UserError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise UserError(f"c_miss and c_fa must be positive, got {c_miss}, {c_fa}")
    theta = np.log(c_fa * (1.0 - p_target)) - np.log(c_miss * p_target)
    accept = llrs >= theta
    p_miss = float(np.count_nonzero(~accept[labels])) / int(labels.sum())
    p_fa = float(np.count_nonzero(accept[~labels])) / int((~labels).sum())
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    return float(dcf / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def compute_calibration_metrics(llrs, labels) -> dict:
    """Cllr, min Cllr and the actual DCF at P_target 0.01 and 0.001 of LLR scores.

    Keys: ``cllr``, ``min_cllr``, ``actdcf_0.01``, ``actdcf_0.001``.
    """
    out = {"cllr": cllr(llrs, labels), "min_cllr": min_cllr(llrs, labels)}
    for p in REPORTED_P_TARGETS:
        out[f"actdcf_{p:g}"] = actual_dcf(llrs, labels, p)
    return out
