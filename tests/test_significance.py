"""The paired seed x speaker bootstrap of dmha.scoring.significance and its table in bench/quality_report."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import REPO

from dmha.common.errors import UserError
from dmha.scoring.metrics import compute_eer
from dmha.scoring.significance import SortedTrials, bootstrap_eers, compare, observed_eer


def _trial_list(n_spk: int = 8, utts: int = 6, seed: int = 0):
    """All pairs of ``utts`` utterances per speaker: labels and the two speaker indices per trial."""
    spk = np.repeat(np.arange(n_spk), utts)
    i, j = np.triu_indices(spk.size, k=1)
    return spk[i] == spk[j], spk[i], spk[j]


def _scores(labels: np.ndarray, separation: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # rounded, so that tied scores occur and must be grouped as compute_eer groups them
    return np.round(rng.normal(size=labels.size) + separation * labels, 2)


def test_unit_weights_give_compute_eer_exactly():
    labels, _, _ = _trial_list()
    scores = _scores(labels, 1.5, 1)
    assert SortedTrials(scores, labels).eer(np.ones(labels.size)) == pytest.approx(
        compute_eer(scores, labels)[0], abs=1e-15)


def test_integer_weights_equal_repeating_the_trials():
    labels, _, _ = _trial_list()
    scores = _scores(labels, 1.0, 2)
    w = np.random.default_rng(3).integers(0, 4, size=labels.size)
    expected = compute_eer(np.repeat(scores, w), np.repeat(labels, w))[0]
    assert SortedTrials(scores, labels).eer(w) == pytest.approx(expected, abs=1e-12)


def test_a_clearly_better_system_is_significant_and_identical_ones_are_not():
    labels, sa, sb = _trial_list()
    systems = {"good": [_scores(labels, 3.0, s) for s in range(3)],
               "bad": [_scores(labels, 0.5, 10 + s) for s in range(3)],
               "bad_copy": None}
    systems["bad_copy"] = [s.copy() for s in systems["bad"]]
    observed = {name: observed_eer(runs, labels) for name, runs in systems.items()}
    draws = bootstrap_eers(systems, labels, sa, sb, draws=200, seed=0)
    assert all(d.shape == (200,) for d in draws.values())
    c = compare("good", "bad", observed, draws)
    assert c.diff < -10 and c.high < 0 and c.significant and c.p_not_better == 0.0
    same = compare("bad", "bad_copy", observed, draws)
    assert same.diff == 0 and same.low == same.high == 0 and not same.significant
    # the draws are paired: the same seeds and speakers for every system, hence exact zeros above,
    # and they vary (speaker and seed resampling move each system's EER)
    assert draws["bad"].std() > 0


def test_speaker_resampling_widens_the_interval_beyond_seed_noise():
    """With one seed only the speakers are resampled: the interval must still have width."""
    labels, sa, sb = _trial_list(n_spk=6)
    systems = {"a": [_scores(labels, 1.2, 0)], "b": [_scores(labels, 1.0, 1)]}
    observed = {n: observed_eer(r, labels) for n, r in systems.items()}
    c = compare("a", "b", observed, bootstrap_eers(systems, labels, sa, sb, draws=200))
    assert c.high - c.low > 0.5


def test_unequal_seed_counts_are_refused():
    labels, sa, sb = _trial_list()
    with pytest.raises(UserError, match="same number of seeds"):
        bootstrap_eers({"a": [_scores(labels, 1, 0)], "b": [_scores(labels, 1, 1)] * 2}, labels, sa, sb)


def _quality_report():
    spec = importlib.util.spec_from_file_location("quality_report", REPO / "bench/quality_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quality_report_table_from_score_files(tmp_path):
    labels, sa, sb = _trial_list(n_spk=5, utts=4)
    utts = [f"s{s}-u{k}" for s in range(5) for k in range(4)]
    i, j = np.triu_indices(len(utts), k=1)
    (tmp_path / "data/t").mkdir(parents=True)
    (tmp_path / "data/t/utt2spk").write_text("".join(f"{u} spk{u[1]}\n" for u in utts))
    for name, sep in (("good", 3.0), ("bad", 0.3)):
        for seed in (0, 1):
            d = tmp_path / f"exp/{name}_s{seed}/scores"
            d.mkdir(parents=True)
            sc = _scores(labels, sep, seed + (0 if name == "good" else 5))
            d.joinpath("t.score").write_text("".join(
                f"{utts[a]} {utts[b]} {s} {'target' if lab else 'nontarget'}\n"
                for a, b, s, lab in zip(i, j, sc, labels)))
    rows = _quality_report().significance_table(tmp_path / "exp", tmp_path / "data", ["bad", "good"],
                                                ["0", "1"], ["t"], draws=100)
    assert len(rows) == 3
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert cells[:3] == ["t", "good", "bad"] and cells[-1] == "yes"
    # a run scored on another trial list is named
    other = tmp_path / "exp/bad_s1/scores/t.score"
    other.write_text("\n".join(other.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(UserError, match="bad_s1.*not the trials of"):
        _quality_report().significance_table(tmp_path / "exp", tmp_path / "data", ["bad", "good"],
                                             ["0", "1"], ["t"], draws=10)


def test_quality_report_best_validation_eer(tmp_path):
    qr = _quality_report()
    assert qr._best_val_eer(tmp_path) is None          # a pre-trained peer has no training metrics
    (tmp_path / "metrics.csv").write_text("epoch,step,loss,acc,val_eer,val_mindcf,lr,time,margin\n"
                                          "1,10,5,0.1,19.3,0.99,0.001,1,0.2\n2,20,4,0.2,12.5,0.9,0.001,2,0.4\n"
                                          "3,30,3,0.3,14.0,0.9,0.001,3,0.4\n")
    assert qr._best_val_eer(tmp_path) == 12.5
