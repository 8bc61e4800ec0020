"""dmha.scoring.metrics against an independent computation from sklearn's ROC/DET curves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import det_curve as sk_det_curve
from sklearn.metrics import roc_curve

from dmha.common.errors import UserError
from dmha.scoring.metrics import compute_eer, compute_metrics, compute_min_dcf, det_curve


def ref_eer(scores, labels) -> float:
    """EER from sklearn's ROC: interpolate linearly where FNR = 1 - TPR crosses FPR."""
    fpr, tpr, _ = roc_curve(labels, scores)   # decreasing thresholds: fpr up, fnr down
    fnr = 1.0 - tpr
    diff = fpr - fnr
    i = int(np.flatnonzero(diff >= 0)[0])
    if diff[i] == 0:
        return float(fpr[i])
    # Segment (i-1, i): solve fpr - fnr == 0 on it.
    a, b = diff[i - 1], diff[i]
    t = -a / (b - a)
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def ref_min_dcf(scores, labels, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """minDCF from sklearn's det_curve, plus the two end points it omits (accept all / reject all)."""
    fpr, fnr, _ = sk_det_curve(labels, scores)
    fpr = np.concatenate((fpr, [0.0, 1.0]))
    fnr = np.concatenate((fnr, [1.0, 0.0]))
    dcf = c_miss * p_target * fnr + c_fa * (1 - p_target) * fpr
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def _random_trials(n: int, seed: int, p_target: float = 0.1, shift: float = 2.0):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < p_target
    scores = rng.normal(size=n) + shift * labels
    return scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scores_match_sklearn(seed):
    scores, labels = _random_trials(5000, seed)
    eer, thr = compute_eer(scores, labels)
    assert eer == pytest.approx(ref_eer(scores, labels), abs=1e-6)
    # The threshold realises (about) the EER: the two error rates there straddle it.
    p_miss = np.mean(scores[labels] < thr)
    p_fa = np.mean(scores[~labels] >= thr)
    assert abs(p_miss - eer) < 0.01 and abs(p_fa - eer) < 0.01
    for p in (0.01, 0.001, 0.05):
        ours = compute_min_dcf(scores, labels, p)[0]
        assert ours == pytest.approx(ref_min_dcf(scores, labels, p), abs=1e-6)
    assert compute_min_dcf(scores, labels, 0.01, c_miss=10, c_fa=1)[0] == pytest.approx(
        ref_min_dcf(scores, labels, 0.01, 10, 1), abs=1e-6)


@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_tied_scores_match_sklearn(decimals):
    """Rounded scores have many ties: thresholds may only sit between distinct values."""
    scores, labels = _random_trials(4000, 10 + decimals, p_target=0.3, shift=1.0)
    scores = np.round(scores, decimals)
    assert len(np.unique(scores)) < len(scores) // 5   # many ties
    assert compute_eer(scores, labels)[0] == pytest.approx(ref_eer(scores, labels), abs=1e-6)
    m = compute_metrics(scores, labels)
    assert m["eer"] == pytest.approx(100 * ref_eer(scores, labels), abs=1e-4)
    assert m["mindcf_0.01"] == pytest.approx(ref_min_dcf(scores, labels, 0.01), abs=1e-6)
    assert m["mindcf_0.001"] == pytest.approx(ref_min_dcf(scores, labels, 0.001), abs=1e-6)


def test_min_dcf_threshold_realises_the_cost():
    scores, labels = _random_trials(3000, 5)
    p = 0.01
    dcf, thr = compute_min_dcf(scores, labels, p)
    p_miss = np.mean(scores[labels] < thr)
    p_fa = np.mean(scores[~labels] >= thr)
    assert (p * p_miss + (1 - p) * p_fa) / p == pytest.approx(dcf, abs=1e-12)


def test_all_tied_scores_give_half():
    """One distinct score: only 'accept all' and 'reject all' exist, so the crossing is at 0.5."""
    labels = np.array([1, 0, 0, 1, 0, 0, 0])
    scores = np.zeros(7)
    assert compute_eer(scores, labels)[0] == pytest.approx(0.5)
    assert compute_min_dcf(scores, labels, 0.01)[0] == pytest.approx(1.0)


def test_hand_computed_small_case():
    # accept if >= thr; points: (fnr, fpr) = (0,1), (0,.5), (.5,0), (1,0): crossing halfway -> 0.25
    eer, _ = compute_eer([0.0, 1.0, 1.0, 3.0], [0, 1, 0, 1])
    assert eer == pytest.approx(0.25)


def test_perfect_separation_gives_zero():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    labels = np.array([False, False, False, True, True])
    eer, thr = compute_eer(scores, labels)
    assert eer == 0.0
    assert 0.3 < thr <= 0.7
    m = compute_metrics(scores, labels)
    assert m["eer"] == 0.0 and m["mindcf_0.01"] == 0.0 and m["mindcf_0.001"] == 0.0
    assert (m["n_target"], m["n_nontarget"]) == (2, 3)


def test_reversed_separation_gives_one():
    eer, _ = compute_eer([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1])
    assert eer == 1.0


def test_det_curve_is_monotone_and_complete():
    scores, labels = _random_trials(2000, 3)
    scores = np.round(scores, 1)
    det = det_curve(scores, labels)
    assert det.fnr[0] == 0 and det.fpr[0] == 1 and det.fnr[-1] == 1 and det.fpr[-1] == 0
    assert np.all(np.diff(det.fnr) >= 0) and np.all(np.diff(det.fpr) <= 0)
    assert len(det.fnr) == len(np.unique(scores)) + 1
    assert np.isinf(det.thresholds[-1])


def test_float32_and_int_labels_accepted():
    scores, labels = _random_trials(1000, 4)
    a = compute_metrics(scores.astype(np.float32), labels.astype(int))
    b = compute_metrics(scores.astype(np.float32), labels)
    assert a == b


@pytest.mark.parametrize("labels", [np.zeros(5, bool), np.ones(5, bool)])
def test_one_class_only_is_an_error(labels):
    with pytest.raises(UserError, match="need both classes"):
        compute_metrics(np.arange(5.0), labels)
    with pytest.raises(UserError):
        compute_eer(np.arange(5.0), labels)


def test_bad_inputs_are_errors():
    with pytest.raises(UserError, match="NaN"):
        compute_eer([0.0, np.nan, 1.0], [0, 1, 1])
    with pytest.raises(UserError, match="parallel"):
        compute_eer([0.0, 1.0], [0, 1, 1])
    with pytest.raises(UserError, match="0/1"):
        compute_eer([0.0, 1.0, 2.0], [0, 2, 1])
    with pytest.raises(UserError, match="p_target"):
        compute_min_dcf([0.0, 1.0], [0, 1], 1.5)
