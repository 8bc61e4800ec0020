"""Score calibration (cosine -> log-likelihood ratio) and the calibration metrics.

What is promised: the prior-weighted logistic regression recovers a known affine distortion of
calibrated scores, whatever the proportion of target trials; Cllr, min Cllr (PAV) and the actual DCF at
the Bayes threshold equal hand computations; min Cllr <= Cllr; compute_threshold writes calibration.yaml
for the model it scored; score.sh --calibration writes LLRs and reports Cllr / actual DCF; dmha-verify
reports the LLR and decides at the Bayes threshold of --p-target.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_script  # noqa: E402
from extract_fixtures import make_tiny_exp, make_wav_data_dir  # noqa: E402

from dmha.common.errors import UserError  # noqa: E402
from dmha.scoring.calibration import (  # noqa: E402
    Calibration,
    bayes_threshold,
    fit_calibration,
    read_calibration_file,
    write_calibration_file,
)
from dmha.scoring.metrics import actual_dcf, cllr, compute_min_dcf, min_cllr  # noqa: E402

LN2 = math.log(2)


def _calibrated_gaussians(rng, n_target: int, n_nontarget: int, mu: float = 4.0):
    """Scores that ARE log-likelihood ratios: N(+mu, 2mu) for targets, N(-mu, 2mu) for non-targets."""
    sd = math.sqrt(2 * mu)
    llr = np.concatenate([rng.normal(mu, sd, n_target), rng.normal(-mu, sd, n_nontarget)])
    labels = np.concatenate([np.ones(n_target, bool), np.zeros(n_nontarget, bool)])
    return llr, labels


@pytest.mark.parametrize("n_target,n_nontarget", [(20000, 20000), (2000, 40000)])
@pytest.mark.parametrize("prior", [0.5, 0.05])
def test_fit_recovers_a_known_affine_map(n_target, n_nontarget, prior):
    rng = np.random.default_rng(0)
    llr, labels = _calibrated_gaussians(rng, n_target, n_nontarget)
    scale, offset = 7.0, -1.5
    raw = (llr - offset) / scale          # what a model might output: llr = 7 * raw - 1.5
    cal = fit_calibration(raw, labels, prior=prior)
    assert cal.scale == pytest.approx(scale, rel=0.06)
    assert cal.offset == pytest.approx(offset, abs=0.25)
    assert cal.info["fit_prior"] == prior and cal.info["n_target"] == n_target
    # the refitted LLRs are as good as the true ones (Cllr within 1%)
    assert cllr(cal.llr(raw), labels) == pytest.approx(cllr(llr, labels), rel=0.01)


def test_fit_refuses_reversed_scores():
    rng = np.random.default_rng(1)
    llr, labels = _calibrated_gaussians(rng, 200, 200)
    with pytest.raises(UserError, match="not higher"):
        fit_calibration(-llr, labels)
    with pytest.raises(UserError, match="non-target"):
        fit_calibration(llr[:200], labels[:200])


def test_cllr_by_hand():
    ln3 = math.log(3)
    llr = np.array([ln3, ln3, 0.0, -ln3, 0.0])
    labels = np.array([1, 1, 1, 0, 0])
    # targets: log2(1 + 1/3) twice and log2(2) = 1; non-targets: log2(1 + 1/3) and 1
    t = (2 * math.log2(4 / 3) + 1) / 3
    n = (math.log2(4 / 3) + 1) / 2
    assert cllr(llr, labels) == pytest.approx(0.5 * (t + n), abs=1e-12)
    assert cllr(np.zeros(5), labels) == pytest.approx(1.0)          # "no information" costs 1 bit
    # perfectly calibrated, well separated scores: small but positive
    assert cllr([ln3, ln3, -ln3, -ln3], [1, 1, 0, 0]) == pytest.approx(math.log2(4 / 3))


def test_min_cllr_by_hand_and_its_properties():
    # PAV on scores 1 2 3 4 with labels 0 1 0 1: posteriors 0, .5, .5, 1 -> LLRs -inf, 0, 0, +inf
    assert min_cllr([1, 2, 3, 4], [0, 1, 0, 1]) == pytest.approx(0.5)
    assert min_cllr([1, 2, 3, 4], [0, 0, 1, 1]) == pytest.approx(0.0)   # separable: no cost at all
    rng = np.random.default_rng(2)
    llr, labels = _calibrated_gaussians(rng, 500, 3000, mu=2.0)
    m = min_cllr(llr, labels)
    assert 0 < m <= cllr(llr, labels)
    for a, b in ((3.0, 1.0), (0.2, -5.0), (1.0, 2.0)):            # any calibration of the scores
        assert m <= cllr(a * llr + b, labels)
    assert min_cllr(np.exp(llr / 3), labels) == pytest.approx(m, abs=1e-12)  # only the order matters


def test_actual_dcf_at_the_bayes_threshold_by_hand():
    theta = bayes_threshold(0.01)
    assert theta == pytest.approx(math.log(99))
    assert bayes_threshold(0.01, c_miss=10) == pytest.approx(math.log(9.9))
    llr = np.array([5.0, 4.0, 6.0, 1.0, theta, 5.0, -1.0, 0.0, 0.0, -3.0])
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    # targets: 4.0 and 1.0 are below 4.595 -> 2 misses of 5 (theta itself is accepted); non-targets:
    # 5.0 accepted -> 1 false alarm of 5
    expected = (0.01 * 2 / 5 + 0.99 * 1 / 5) / 0.01
    assert actual_dcf(llr, labels, 0.01) == pytest.approx(expected)
    # never below the minimum DCF over all thresholds
    assert actual_dcf(llr, labels, 0.01) >= compute_min_dcf(llr, labels, 0.01)[0]


def test_calibration_file_roundtrip_and_bad_files(tmp_path):
    cal = Calibration(12.5, -3.25, {"fit_prior": 0.5, "n_target": 3, "source": "x/val_trials"})
    path = write_calibration_file(tmp_path / "calibration.yaml", cal)
    back = read_calibration_file(path)
    assert (back.scale, back.offset) == (12.5, -3.25) and back.info["source"] == "x/val_trials"
    assert back.llr(0.5) == pytest.approx(12.5 * 0.5 - 3.25)
    assert back.score_threshold(0.01) == pytest.approx((math.log(99) + 3.25) / 12.5)
    (tmp_path / "bad.yaml").write_text("scale: -1\noffset: 0\n")
    with pytest.raises(UserError, match="bad.yaml.*scale > 0"):
        read_calibration_file(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text("threshold: 0.3\n")
    with pytest.raises(UserError, match="not a calibration file"):
        read_calibration_file(tmp_path / "bad.yaml")


def _write_scp(path: Path, vecs: dict[str, np.ndarray]) -> Path:
    with kaldiio.WriteHelper(f"ark,scp:{path}.ark,{path}.scp") as w:
        for k in sorted(vecs):
            w(k, vecs[k].astype(np.float32))
    return Path(f"{path}.scp")


def test_score_with_calibration_reports_llr_metrics(tmp_path):
    from dmha.scoring.results import read_results

    rng = np.random.default_rng(3)
    spk = {s: rng.normal(size=16) for s in range(4)}
    vecs = {f"s{s}-u{u}": spk[s] + rng.normal(scale=1.2, size=16) for s in spk for u in range(4)}
    scp = _write_scp(tmp_path / "xvector", vecs)
    utts = sorted(vecs)
    trials = [(a, b, a[:2] == b[:2]) for i, a in enumerate(utts) for b in utts[i + 1:]]
    (tmp_path / "trials").write_text("".join(f"{a} {b} {'target' if t else 'nontarget'}\n"
                                             for a, b, t in trials))
    cal_file = write_calibration_file(tmp_path / "calibration.yaml", Calibration(8.0, -2.0, {"norm": "none"}))
    scores_dir = tmp_path / "scores"
    scores_dir.mkdir()
    # an older dmha's results.tsv (no calibration columns): read and extended, not refused
    from dmha.scoring.results import LEGACY_HEADERS
    (tmp_path / "results.tsv").write_text("\t".join(LEGACY_HEADERS[0]) + "\n" + "\t".join(
        ["old", "none", "9.5", "0.5", "0.6", "10", "5", "5", "0", "x.score", "2024-01-01T00:00:00Z"]) + "\n")
    out = run_script(["steps/score.sh", "--calibration", str(cal_file), "--results",
                      str(tmp_path / "results"), str(tmp_path / "trials"), str(scp),
                      str(scores_dir / "test.score")])
    assert "Cllr" in out.stdout and "actual DCF(0.01)" in out.stdout
    score_rows = [line.split() for line in (scores_dir / "test.score").read_text().splitlines()]
    llr_rows = [line.split() for line in (scores_dir / "test.llr").read_text().splitlines()]
    assert [r[:2] for r in llr_rows] == [r[:2] for r in score_rows]
    s = np.array([float(r[2]) for r in score_rows])
    llr = np.array([float(r[2]) for r in llr_rows])
    np.testing.assert_allclose(llr, 8.0 * s - 2.0, atol=1e-5)
    labels = np.array([r[3] == "target" for r in score_rows])
    rows = read_results(tmp_path / "results")
    assert [r["set"] for r in rows] == ["old", "test"] and rows[0]["cllr"] is None
    row = rows[1]
    assert row["cllr"] == pytest.approx(cllr(8.0 * s - 2.0, labels), rel=1e-4)
    assert row["actdcf_0.01"] == pytest.approx(actual_dcf(8.0 * s - 2.0, labels, 0.01), rel=1e-4)
    assert row["min_cllr"] <= row["cllr"] and row["calibration"] == str(cal_file)
    assert "Cllr=" in (tmp_path / "results").read_text().splitlines()[-1]
    out = run_script(["python", "-m", "dmha.bin.summarize_results", str(tmp_path / "results")])
    assert "actDCF(0.01)" in out.stdout
    # a calibration of plain cosine scores does not hold for normalised ones
    out = run_script(["steps/score.sh", "--calibration", str(cal_file), "--norm", "snorm", "--cohort",
                      str(scp), str(tmp_path / "trials"), str(scp), str(scores_dir / "n.score")], check=False)
    assert out.returncode == 1 and "fitted on 'none' scores" in out.stderr


def _separable_lists(root: Path) -> Path:
    """Validation lists whose target pairs are near-copies of one utterance (any model separates them)."""
    rng = np.random.default_rng(4)
    feats = {}
    for s in range(4):
        base = rng.normal(size=(70 + 10 * s, 80)) * rng.uniform(0.5, 3, size=80)
        for u in range(2):
            feats[f"spk{s}-u{u}"] = base + rng.normal(scale=0.05, size=base.shape)
    lists = root / "lists"
    lists.mkdir(parents=True)
    scp = _write_scp(root / "feats", feats)
    (lists / "val_feats.scp").write_text(scp.read_text())
    utts = sorted(feats)
    pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
    (lists / "val_trials").write_text("".join(
        f"{a} {b} {'target' if a[:4] == b[:4] else 'nontarget'}\n" for a, b in pairs))
    return lists


def test_compute_threshold_writes_calibration_of_its_model(tmp_path):
    import dmha

    exp = make_tiny_exp(tmp_path / "exp", step=7)
    lists = _separable_lists(tmp_path)
    out = run_script(["steps/compute_threshold.sh", "--device", "cpu", str(exp), str(lists)])
    assert "calibration llr" in out.stdout
    stored = yaml.safe_load((exp / "calibration.yaml").read_text())
    assert stored["model_step"] == 7 and stored["model_file"] == "best.pt" and stored["norm"] == "none"
    assert stored["source"] == str(lists / "val_trials") and stored["fit_prior"] == 0.5
    assert (stored["n_target"], stored["n_nontarget"]) == (4, 24)
    assert stored["val_min_cllr"] <= stored["val_cllr"] + 1e-9
    model = dmha.load_model(exp, device="cpu")
    assert model.calibration.scale == pytest.approx(stored["scale"])
    # refit from the cosine scores of the same trials: the same map
    from dmha.embed.xvectors import embed_utterances
    from dmha.scoring.cosine import cosine_scores
    from dmha.training.loop import ValidationSet

    val = ValidationSet(lists)
    emb = embed_utterances(model.exp.model, val.feats, device=model.exp.device, norm=model.exp.norm,
                           lengths=val.feats.lengths)
    refit = fit_calibration(cosine_scores(emb, val.enroll, val.test), val.labels)
    assert refit.scale == pytest.approx(stored["scale"], rel=1e-3)
    assert refit.offset == pytest.approx(stored["offset"], abs=1e-3 * abs(stored["scale"]))
    # a calibration of another model (step) is ignored
    stored["model_step"] = 8
    (exp / "calibration.yaml").write_text(yaml.safe_dump(stored))
    assert dmha.load_model(exp, device="cpu").calibration is None


def test_compute_threshold_uses_only_pairs_within_a_validation_domain(tmp_path):
    exp = make_tiny_exp(tmp_path / "exp", step=7)
    lists = _separable_lists(tmp_path)
    utts = sorted(line.split()[0] for line in (lists / "val_feats.scp").read_text().splitlines())
    (lists / "val_utt2domain").write_text("".join(f"{u} {'real' if u[3] in '01' else 'synthetic'}\n"
                                                  for u in utts))
    run_script(["steps/compute_threshold.sh", "--device", "cpu", str(exp), str(lists)])
    stored = yaml.safe_load((exp / "calibration.yaml").read_text())
    # 4 target pairs, and of the 24 non-target pairs only the 8 inside a domain (spk0-spk1, spk2-spk3)
    assert (stored["n_target"], stored["n_nontarget"]) == (4, 8)
    assert yaml.safe_load((exp / "threshold.yaml").read_text())["n_nontarget"] == 8


def _verify(*args: str) -> subprocess.CompletedProcess:
    return run_script([sys.executable, "-m", "dmha.bin.verify", *args], check=False)


def test_verify_prints_llr_and_bayes_decision(tmp_path):
    import dmha

    exp = make_tiny_exp(tmp_path / "exp", step=7)
    data = make_wav_data_dir(tmp_path / "data", n_spk=2, n_utt=1)
    wavs = sorted(line.split(None, 1)[1] for line in (data / "wav.scp").read_text().splitlines())
    write_calibration_file(exp / "calibration.yaml", Calibration(10.0, -2.0, {"model_step": 7,
                                                                              "model_file": "best.pt"}))
    model = dmha.load_model(exp, device="cpu")
    cos = model.score(wavs[0], wavs[1])
    llr = 10.0 * cos - 2.0
    assert model.llr(wavs[0], wavs[1]) == pytest.approx(llr, abs=1e-6)
    v = model.verify(wavs[0], wavs[1])
    assert v.basis == "llr" and v.threshold == pytest.approx(math.log(99)) and v.same == (llr >= math.log(99))
    for theta, word in ((llr - 0.5, "same"), (llr + 0.5, "different")):
        p = 1.0 / (1.0 + math.exp(theta))          # the prior whose Bayes threshold is theta
        out = _verify("--exp", str(exp), "--device", "cpu", "--p-target", repr(p), *wavs)
        assert out.returncode == 0, out.stderr
        fields = out.stdout.split()
        assert float(fields[0]) == pytest.approx(cos, abs=1e-3) and fields[1] == word
        assert f"LLR {llr:.3f}" in out.stdout and "calibration.yaml" in out.stdout
    # --threshold (cosine) overrides the calibration; the LLR is still shown
    out = _verify("--exp", str(exp), "--device", "cpu", "--threshold", f"{cos - 0.01:.6f}", *wavs)
    assert out.stdout.split()[1] == "same" and "--threshold" in out.stdout and "LLR" in out.stdout
    out = _verify("--exp", str(exp), "--device", "cpu", "--p-target", "1.5", *wavs)
    assert out.returncode == 2 and "probability" in out.stderr
