"""Is system A's EER really lower than system B's? A paired two-level bootstrap over seeds and speakers.

Why this design: at the mini recipe's size two sources of chance move an EER by points: the training
seed (sd 1-4 points over seeds) and the few test speakers (14 in mini_test, 7 in real_test). A bootstrap
over trials alone treats 199,012 trials as independent, although they come from 714 utterances of 14
voices, and gives intervals far too narrow; a comparison over 3 seeds alone ignores the test set. So each
bootstrap draw resamples **both**, the same way for every system (paired):

* the seeds: ``n`` seed indices drawn with replacement; a system's EER in the draw is the mean over those
  seeds (the systems' runs with the same seed index form the pairs);
* the test speakers: ``S`` speakers drawn with replacement, speaker ``s`` drawn ``m_s`` times; a trial
  between speakers ``a`` and ``b`` then counts ``m_a * m_b`` times (every pair of drawn copies), so a
  speaker that is not drawn takes all its trials out and a doubled one weighs its target trials 4x.

The EER of a weighted trial list is computed exactly like :func:`dmha.scoring.metrics.compute_eer` (tied
scores grouped, linear interpolation at the crossing), on one sort per run done once. The result states
the observed difference of the seed-mean EERs, its 95% percentile interval and the share of draws in
which A is not better than B; "significant" here means that interval excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmha.common.errors import UserError
from dmha.scoring.metrics import DetPoints, _check_inputs, _eer_from_points, compute_eer, group_ends


class SortedTrials:
    """One run's scores on one trial list, sorted once, so a weighted EER is two cumulative sums."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        scores, labels = _check_inputs(scores, labels)
        self.order = np.argsort(scores)
        self.labels = labels[self.order]
        self.last = group_ends(scores[self.order])

    def eer(self, weights: np.ndarray) -> float:
        """EER (fraction) with trial ``i`` counted ``weights[i]`` times (weights in the caller's order)."""
        w = weights[self.order].astype(np.float64)
        below_all = np.cumsum(w)[self.last]
        below_tgt = np.cumsum(w * self.labels)[self.last]
        n_tgt, n_all = below_tgt[-1], below_all[-1]
        n_non = n_all - n_tgt
        if n_tgt <= 0 or n_non <= 0:
            return float("nan")
        fnr = np.concatenate(([0.0], below_tgt / n_tgt))
        fpr = np.concatenate(([1.0], (n_non - (below_all - below_tgt)) / n_non))
        det = DetPoints(fpr=fpr, fnr=fnr, thresholds=np.zeros_like(fnr), n_target=int(n_tgt),
                        n_nontarget=int(n_non))
        return _eer_from_points(det)[0]


@dataclass
class Comparison:
    """A vs B: seed-mean EER (in %) of each, the difference A - B, its 95% interval, P(A - B >= 0)."""

    eer_a: float
    eer_b: float
    diff: float
    low: float
    high: float
    p_not_better: float
    draws: int

    @property
    def significant(self) -> bool:
        return self.high < 0 or self.low > 0


def bootstrap_eers(systems: dict[str, list[np.ndarray]], labels: np.ndarray, spk_a: np.ndarray,
                   spk_b: np.ndarray, draws: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Seed-mean EER (%) of every system in each of ``draws`` two-level bootstrap draws (module docstring).

    ``systems[name][k]``: the scores of seed ``k`` of that system on the same trial list, in the order of
    ``labels`` (True = target) and of the trials' speaker indices ``spk_a``/``spk_b`` (0..S-1; equal for a
    target trial). Every system sees the same draws, so any two of them are compared paired. Draw 0 of
    the result is not special; the observed (unresampled) EERs are :func:`observed_eer`.
    """
    counts = {len(runs) for runs in systems.values()}
    if not systems or len(counts) != 1 or 0 in counts:
        raise UserError(f"the paired bootstrap needs the same number of seeds for every system, got "
                        f"{ {name: len(runs) for name, runs in systems.items()} }")
    spk_a, spk_b = np.asarray(spk_a), np.asarray(spk_b)
    n = np.asarray(labels).size
    if spk_a.shape != (n,) or spk_b.shape != (n,):
        raise UserError(f"{n} trials but {spk_a.size} / {spk_b.size} speaker indices")
    runs = {name: [SortedTrials(np.asarray(r), labels) for r in rs] for name, rs in systems.items()}
    n_seeds, n_spk = counts.pop(), int(max(spk_a.max(), spk_b.max())) + 1
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in systems}
    while len(next(iter(out.values()))) < draws:
        ks = rng.integers(n_seeds, size=n_seeds)
        m = np.bincount(rng.integers(n_spk, size=n_spk), minlength=n_spk)
        w = m[spk_a] * m[spk_b]
        eers = {name: [rs[k].eer(w) for k in ks] for name, rs in runs.items()}
        if any(np.isnan(v).any() for v in eers.values()):   # one speaker drawn: no non-target trials
            continue
        for name, v in eers.items():
            out[name].append(100 * float(np.mean(v)))
    return {name: np.asarray(v) for name, v in out.items()}


def observed_eer(runs: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean EER (%) over a system's seeds on the full trial list (what the quality table prints)."""
    return 100 * float(np.mean([compute_eer(r, labels)[0] for r in runs]))


def compare(name_a: str, name_b: str, observed: dict[str, float], draws: dict[str, np.ndarray]) -> Comparison:
    """A vs B from :func:`bootstrap_eers` draws: observed difference, 95% interval, P(A - B >= 0)."""
    d = draws[name_a] - draws[name_b]
    low, high = np.percentile(d, [2.5, 97.5])
    a, b = observed[name_a], observed[name_b]
    return Comparison(eer_a=a, eer_b=b, diff=a - b, low=float(low), high=float(high),
                      p_not_better=float(np.mean(d >= 0)), draws=d.size)
