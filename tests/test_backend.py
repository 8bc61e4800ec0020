"""The scoring back-end (global mean + LDA [+ PLDA] on training embeddings): what it learns, its files, and
that every scorer (stage 5, the threshold/calibration, dmha.load_model, the ONNX runtime) applies the same
one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from dmha.common.errors import UserError
from dmha.scoring.backend import Backend, cross_scores, fit_backend, pair_score, read_backend, write_backend
from dmha.scoring.metrics import compute_eer

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_script  # noqa: E402
from extract_fixtures import make_feats_data_dir, make_tiny_exp  # noqa: E402


def _voices(n_spk: int, per_spk: int, seed: int, dim: int = 40, spk_dims: int = 8,
            nuisance: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose speaker identity lives in the first ``spk_dims`` dims, plus within-speaker variation
    (text, channel) that is large in a few fixed directions shared by all speakers."""
    rng = np.random.default_rng(seed)
    means = np.zeros((n_spk, dim))
    means[:, :spk_dims] = rng.normal(size=(n_spk, spk_dims))
    nuisance_dirs = np.linalg.qr(np.random.default_rng(99).normal(size=(dim, dim)))[0][:, :6].T  # fixed
    x = np.repeat(means, per_spk, axis=0) + 0.3 * rng.normal(size=(n_spk * per_spk, dim))
    x += nuisance * rng.normal(size=(n_spk * per_spk, 6)) @ nuisance_dirs
    x += 2.0  # an offset common to all embeddings (what mean subtraction removes)
    return x.astype(np.float32), np.repeat(np.arange(n_spk), per_spk)


def _all_pairs_eer(x: np.ndarray, spk: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.triu_indices(len(x), 1)
    return compute_eer(np.sum(x[i] * x[j], axis=1), spk[i] == spk[j])[0]


def test_lda_backend_removes_within_speaker_directions_for_unseen_speakers():
    train, train_spk = _voices(40, 10, seed=0)
    test, test_spk = _voices(12, 8, seed=1)  # other speakers, same kind of variation
    raw = _all_pairs_eer(test, test_spk)
    lda = fit_backend(train, [f"s{s}" for s in train_spk], kind="lda")
    mean = fit_backend(train, [f"s{s}" for s in train_spk], kind="mean")
    assert lda.output_dim == 39 and lda.info["lda_dim_requested"] == 200  # capped at speakers - 1
    eer_lda = _all_pairs_eer(lda.apply(test), test_spk)
    eer_mean = _all_pairs_eer(mean.apply(test), test_spk)
    assert eer_lda < 0.6 * raw, (raw, eer_lda)
    assert eer_mean < raw and eer_lda < eer_mean
    out = lda.apply(test)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # kind mean: length norm, minus the mean of the normalised training embeddings, length norm
    xn = train / np.linalg.norm(train, axis=1, keepdims=True)
    manual = test / np.linalg.norm(test, axis=1, keepdims=True) - xn.mean(0)
    np.testing.assert_allclose(mean.apply(test), manual / np.linalg.norm(manual, axis=1, keepdims=True),
                               atol=1e-5)
    # without shrinkage (svd solver; 400 embeddings estimate this 40-dim covariance well) and with the
    # speaker subspace's dim, LDA keeps little more than the speaker directions
    plain = fit_backend(train, train_spk.astype(str), kind="lda", lda_dim=8, shrinkage="none")
    assert plain.output_dim == 8 and _all_pairs_eer(plain.apply(test), test_spk) < 0.25 * raw


def _gauss_llr(a: np.ndarray, b: np.ndarray, mu: np.ndarray, between: np.ndarray,
               within: np.ndarray) -> float:
    """log p(a, b | same speaker) - log p(a) p(b), straight from the Gaussians of the two-covariance model."""
    from scipy.stats import multivariate_normal as mvn

    total = between + within
    joint = mvn(np.concatenate([mu, mu]), np.block([[total, between], [between, total]]))
    return float(joint.logpdf(np.concatenate([a, b])) - mvn(mu, total).logpdf(a) - mvn(mu, total).logpdf(b))


def test_plda_scores_are_the_two_covariance_likelihood_ratio():
    from dmha.scoring.backend import fit_plda

    rng = np.random.default_rng(0)
    k, n_spk, per = 5, 3000, 8
    # a known model: between = A diag(psi) A^T, within = A A^T, in a rotated, shifted space
    a_mat = rng.normal(size=(k, k))
    psi_true = np.array([4.0, 2.0, 1.0, 0.5, 0.1])
    centres = rng.normal(size=(n_spk, k)) * np.sqrt(psi_true)
    u = np.repeat(centres, per, axis=0) + rng.normal(size=(n_spk * per, k))
    y = u @ a_mat.T + 3.0
    plda = fit_plda(y, np.repeat(np.arange(n_spk), per).astype(str))
    np.testing.assert_allclose(plda.psi, psi_true, rtol=0.1, atol=0.03)  # unbiased moments, 3000 speakers
    # the closed form equals the Gaussian ratio of the fitted model, pair by pair
    inv = np.linalg.inv(plda.transform)
    between, within = inv @ np.diag(plda.psi) @ inv.T, inv @ inv.T
    pa, pb = y[:6], y[8:14]  # pairs of different speakers, and (first row vs second) of one speaker
    got = plda.pair_llr(plda.project(pa), plda.project(pb))
    want = [_gauss_llr(x, z, plda.mean, between, within) for x, z in zip(pa, pb)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    same = plda.pair_llr(plda.project(y[:1]), plda.project(y[1:2]))[0]
    assert same == pytest.approx(_gauss_llr(y[0], y[1], plda.mean, between, within))
    cross = plda.cross_llr(plda.project(pa), plda.project(pb))
    np.testing.assert_allclose(np.diag(cross), got, rtol=1e-12)
    np.testing.assert_allclose(cross[1, 4], plda.pair_llr(plda.project(pa[1:2]), plda.project(pb[4:5]))[0])


def _gauss_llr_many(enrol: np.ndarray, v: np.ndarray, mu: np.ndarray, between: np.ndarray,
                    within: np.ndarray) -> float:
    """log p(v | enrol rows, same speaker) - log p(v): the joint Gaussian of n + 1 rows of one speaker."""
    from scipy.stats import multivariate_normal as mvn

    rows = np.vstack([enrol, v[None]])
    n = rows.shape[0]
    cov = np.kron(np.ones((n, n)), between) + np.kron(np.eye(n), within)
    k = mu.size
    joint = mvn(np.tile(mu, n), cov).logpdf(rows.ravel())
    enrolled = mvn(np.tile(mu, n - 1), cov[:-k, :-k]).logpdf(enrol.ravel())
    return float(joint - enrolled - mvn(mu, between + within).logpdf(v))


def test_plda_scores_several_enrolment_utterances_by_the_count():
    from dmha.scoring.backend import Plda, enrolment_models

    rng = np.random.default_rng(1)
    k = 4
    plda = Plda(rng.normal(size=k), rng.normal(size=(k, k)) + 2 * np.eye(k), np.array([3.0, 1.0, 0.3, 0.0]))
    inv = np.linalg.inv(plda.transform)
    between, within = inv @ np.diag(plda.psi) @ inv.T, inv @ inv.T
    enrol = [rng.normal(size=(n, k)) for n in (1, 3, 5)]
    tests = rng.normal(size=(3, k))
    groups = [range(0, 1), range(1, 4), range(4, 9)]
    models, counts = enrolment_models(np.vstack([plda.project(e) for e in enrol]), groups,
                                      Backend(np.zeros(k), plda=plda))
    assert counts.tolist() == [1, 3, 5]
    got = plda.pair_llr(models, plda.project(tests), counts)
    want = [_gauss_llr_many(e, t, plda.mean, between, within) for e, t in zip(enrol, tests)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    cross = plda.cross_llr(models, plda.project(tests), counts)
    np.testing.assert_allclose(np.diag(cross), got, rtol=1e-12)
    # three utterances are not one: averaging them and scoring as one utterance gives another ratio
    assert abs(plda.pair_llr(models[1:2], plda.project(tests[1:2]))[0] - got[1]) > 1e-3
    with pytest.raises(ValueError, match="counts"):
        plda.pair_llr(models, plda.project(tests), np.array([1, 0, 2]))


def test_plda_backend_scores_unseen_speakers_better_than_cosine():
    train, train_spk = _voices(40, 10, seed=0)
    test, test_spk = _voices(12, 8, seed=1)
    plda = fit_backend(train, [f"s{s}" for s in train_spk], kind="plda")
    assert plda.kind == "plda" and plda.output_dim == 39
    x = plda.apply(test)
    i, j = np.triu_indices(len(x), 1)
    eer_plda = compute_eer(plda.pair_scores(x[i], x[j]), test_spk[i] == test_spk[j])[0]
    assert eer_plda < 0.6 * _all_pairs_eer(test, test_spk)
    # pair_score (dmha.load_model, the ONNX runtime) gives the same llr as the matrix path
    assert pair_score(test[0], test[5], plda) == pytest.approx(plda.pair_scores(x[:1], x[5:6])[0], abs=1e-4)
    # several enrolment utterances (one speaker: rows 0-2) make one model, scored by the count ...
    from dmha.scoring.backend import enrolment_models

    model, n = enrolment_models(x, [range(3)], plda)
    by_count = plda.plda.pair_llr(model, x[5:6], n)[0]
    assert pair_score(test[:3], test[5], plda) == pytest.approx(by_count, abs=1e-4)
    # ... which separates unseen speakers better than one enrolment utterance does
    models, counts = enrolment_models(x, [range(s * 8, s * 8 + 4) for s in range(12)], plda)
    probes = np.array([s * 8 + j for s in range(12) for j in range(4, 8)])
    scores = plda.pair_scores(np.repeat(models, len(probes), 0), np.tile(x[probes], (12, 1)),
                              np.repeat(counts, len(probes)))
    same = np.repeat(np.arange(12), len(probes)) == np.tile(test_spk[probes], 12)
    single = plda.pair_scores(np.repeat(x[::8][:, None], len(probes), 1).reshape(-1, x.shape[1]),
                              np.tile(x[probes], (12, 1)))
    assert compute_eer(scores, same)[0] < compute_eer(single, same)[0]


@pytest.mark.filterwarnings("ignore:Only one sample available")  # sklearn, on the one-utterance speakers
def test_bad_fits_and_inputs_are_refused():
    x, spk = _voices(2, 5, seed=0)
    with pytest.raises(UserError, match="at least 3 speakers"):
        fit_backend(x, spk.astype(str), kind="lda")
    one_each, labels = _voices(30, 1, seed=0)  # one utterance per speaker: no within-speaker spread
    with pytest.raises(UserError, match="more embeddings than speakers"):
        fit_backend(one_each, labels.astype(str), kind="lda")
    few = np.concatenate([one_each, one_each[:5] + 0.1])  # 5 speakers with a second utterance
    few_labels = np.concatenate([labels, labels[:5]]).astype(str)
    with pytest.raises(UserError, match="LDA fit failed on 35 embeddings of 30 speakers"):
        fit_backend(few, few_labels, kind="lda")  # sklearn's singular covariance: one line, no traceback
    from dmha.scoring.backend import fit_plda

    with pytest.raises(UserError, match="PLDA: 35 utterances of 30 speakers leave 5 degrees of freedom"):
        fit_plda(few[:, :29], few_labels)
    with pytest.raises(UserError, match="speaker labels"):
        fit_backend(x, spk[:-1].astype(str), kind="mean")
    b = fit_backend(x, spk.astype(str), kind="mean")
    with pytest.raises(UserError, match="dimension 12.*40-dim"):
        b.apply(np.ones((2, 12)))
    with pytest.raises(UserError, match="zero or not finite"):
        b.apply(np.zeros((1, 40)))


@pytest.mark.parametrize("kind", ["lda", "plda"])
def test_files_round_trip_in_kaldi_format_and_text(tmp_path, kind):
    train, spk = _voices(10, 6, seed=3)
    b = fit_backend(train, spk.astype(str), kind=kind, lda_dim=5)
    out = write_backend(tmp_path / "backend", b)
    assert kaldiio.load_mat(str(out / "mean.vec")).shape == (40,)
    assert kaldiio.load_mat(str(out / "transform.mat")).shape == (5, 40)
    if kind == "plda":
        assert kaldiio.load_mat(str(out / "plda_transform.mat")).shape == (5, 5)
        assert kaldiio.load_mat(str(out / "plda_psi.vec")).shape == (5,)
    info = yaml.safe_load((out / "backend.yaml").read_text())
    assert info["kind"] == kind and info["output_dim"] == 5 and info["fingerprint"] == b.fingerprint()
    back = read_backend(out)
    assert back.fingerprint() == b.fingerprint() and back.kind == kind
    np.testing.assert_allclose(back.apply(train), b.apply(train), atol=1e-5)
    text = Backend.from_text(b.to_text())
    assert text.kind == kind
    np.testing.assert_allclose(text.apply(train), b.apply(train), atol=1e-5)
    x = b.apply(train[:4])
    np.testing.assert_allclose(text.pair_scores(x[:2], x[2:]), b.pair_scores(x[:2], x[2:]), rtol=1e-5)
    if kind == "plda":  # PLDA files that do not fit the LDA
        kaldiio.save_mat(str(out / "plda_psi.vec"), np.ones(4, dtype=np.float32))
        with pytest.raises(UserError, match="PLDA files do not fit the 5-dim LDA"):
            read_backend(out)
    damaged = json.loads(b.to_text())
    damaged["mean"] = damaged["mean"][:-8] + "AAAAAAA="
    with pytest.raises(UserError, match="fingerprint|unreadable"):
        Backend.from_text(json.dumps(damaged), "m.onnx")
    (out / "transform.mat").write_bytes(b"\0B")  # truncated
    with pytest.raises(UserError, match="cannot read"):
        read_backend(out)


def test_a_failed_write_keeps_the_old_backend(tmp_path, monkeypatch):
    train, spk = _voices(10, 6, seed=3)
    old = write_backend(tmp_path / "backend", fit_backend(train, spk.astype(str), kind="mean"))
    before = read_backend(old).fingerprint()
    new = fit_backend(train, spk.astype(str), kind="lda", lda_dim=4)
    real_save = kaldiio.save_mat

    def failing_save(path, array):
        if path.endswith("transform.mat"):
            raise OSError("disk full")
        real_save(path, array)

    monkeypatch.setattr(kaldiio, "save_mat", failing_save)
    with pytest.raises(OSError):
        write_backend(tmp_path / "backend", new)
    assert read_backend(old).fingerprint() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backend"]  # no temporary dir left


def _emb_dir(path: Path, table: dict[str, np.ndarray], model: str = "best.pt") -> Path:
    path.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{path}/xvector.ark,{path}/xvector.scp") as w:
        for k, v in table.items():
            w(k, v)
    stamp = json.dumps({"inputs": ["config.yaml 1 2", f"{model} 3 4"]})
    (path / ".extract_info").write_text(stamp + "\nabc\n")
    return path


@pytest.fixture()
def exp_with_training_embeddings(tmp_path):
    torch.set_num_threads(1)
    exp = make_tiny_exp(tmp_path / "exp")
    train, spk = _voices(6, 5, seed=4, dim=400)
    data = tmp_path / "train"
    data.mkdir()
    utts = [f"spk{s}-{i:02d}" for i, s in enumerate(spk)]
    (data / "utt2spk").write_text("".join(f"u {s}\n".replace("u", u, 1) for u, s in zip(utts, spk)))
    emb = _emb_dir(tmp_path / "emb", dict(zip(utts, train)))
    return exp, data, emb


def test_train_backend_cli_stamps_the_model_and_refuses_bad_input(exp_with_training_embeddings, tmp_path):
    exp, data, emb = exp_with_training_embeddings
    out = run_script(["steps/train_backend.sh", "--lda-dim", "3", str(exp), str(data), str(emb)])
    assert "400 -> 3 dims" in out.stdout and "6 speakers" in out.stdout
    info = yaml.safe_load((exp / "backend" / "backend.yaml").read_text())
    assert info["model_step"] == 7 and info["model_file"] == "best.pt" and info["n_utts"] == 30
    # an utterance without embedding: named, and the old back-end is kept as it was
    (data / "utt2spk").write_text((data / "utt2spk").read_text() + "extra-utt spk0\n")
    bad = run_script(["steps/train_backend.sh", str(exp), str(data), str(emb)], check=False)
    assert bad.returncode == 1 and "extra-utt" in bad.stderr and "re-extract" in bad.stderr
    assert yaml.safe_load((exp / "backend" / "backend.yaml").read_text())["lda_dim"] == 3
    # embeddings of another model than --model
    bad = run_script(["steps/train_backend.sh", "--model", "avg_last2.pt", str(exp), str(data), str(emb)],
                     check=False)
    assert bad.returncode == 1 and "avg_last2.pt" in bad.stderr


def test_every_scorer_uses_the_backend_and_stale_files_are_ignored(exp_with_training_embeddings, tmp_path):
    import dmha
    from dmha.bin.compute_threshold import compute_threshold
    from dmha.bin.train_backend import train_backend
    from dmha.experiment import read_calibration, read_threshold, write_calibration
    from dmha.scoring.calibration import Calibration

    exp, data, emb = exp_with_training_embeddings
    # validation lists (stage 2 layout) of 4 speakers x 3 utterances
    val = make_feats_data_dir(tmp_path / "val", [60, 80, 70, 90, 65, 75, 85, 95, 55, 66, 77, 88], seed=5)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "val_feats.scp").write_text((val / "feats.scp").read_text())
    rows = [line.split() for line in (val / "utt2spk").read_text().splitlines()]
    (lists / "val_trials").write_text("".join(f"{a[0]} {b[0]} {'target' if a[1] == b[1] else 'nontarget'}\n"
                                              for i, a in enumerate(rows) for b in rows[i + 1:]))
    compute_threshold(exp, lists, device="cpu")
    plain_threshold = yaml.safe_load((exp / "threshold.yaml").read_text())
    assert plain_threshold["backend"] is None

    train_backend(exp, data, emb, lda_dim=4)
    backend = read_backend(exp / "backend")
    # the threshold and calibration of plain cosine scores no longer hold: ignored (warned)
    assert read_threshold(exp, {"step": 7}, "best.pt", backend.fingerprint()) is None
    model = dmha.load_model(exp, device="cpu")
    assert model.backend is not None and model.backend.fingerprint() == backend.fingerprint()
    assert model.threshold is None and model.calibration is None

    r = compute_threshold(exp, lists, device="cpu")
    stored = yaml.safe_load((exp / "threshold.yaml").read_text())
    assert stored["backend"] == backend.fingerprint() and r["backend"] == "lda"
    model = dmha.load_model(exp, device="cpu")
    assert model.threshold == stored["threshold"]
    # (this random model's validation scores cannot be calibrated; a calibration is stamped the same way)
    write_calibration(exp, Calibration(4.0, -1.0, {"norm": "none"}), best={"step": 7},
                      backend=backend.fingerprint())
    assert read_calibration(exp, {"step": 7}, "best.pt", backend.fingerprint()).scale == 4.0
    assert read_calibration(exp, {"step": 7}, "best.pt", None) is None
    table = kaldiio.load_scp(str(emb / "xvector.scp"))
    a, b = table["spk0-00"], table["spk1-05"]  # two training speakers
    expected = float(np.dot(*backend.apply(np.stack([a, b]))))
    assert model.score(a, b) == pytest.approx(expected, abs=1e-6) == pair_score(a, b, backend)
    assert abs(expected - pair_score(a, b)) > 1e-3  # the back-end changes the score

    # refitted with another dim: the threshold of the old fit is ignored again
    train_backend(exp, data, emb, lda_dim=2)
    assert dmha.load_model(exp, device="cpu").threshold is None
    # PLDA: the threshold is one of its log-likelihood ratios, and every scorer gives that ratio
    train_backend(exp, data, emb, kind="plda", lda_dim=4)
    plda = read_backend(exp / "backend")
    r = compute_threshold(exp, lists, device="cpu")
    assert r["backend"] == "plda"
    assert yaml.safe_load((exp / "threshold.yaml").read_text())["backend"] == plda.fingerprint()
    model = dmha.load_model(exp, device="cpu")
    assert model.threshold == pytest.approx(r["threshold"])
    mapped = plda.apply(np.stack([a, b]))
    llr = float(plda.pair_scores(mapped[:1], mapped[1:])[0])
    assert model.score(a, b) == pytest.approx(llr, rel=1e-5) == pair_score(a, b, plda)
    assert abs(llr - expected) > 1e-2
    # a back-end of another model (a new best.pt) is ignored
    make_tiny_exp(exp, step=8)
    assert dmha.load_model(exp, device="cpu").backend is None


@pytest.mark.parametrize("kind", ["lda", "plda"])
def test_score_cli_applies_the_backend_and_guards_the_calibration(tmp_path, kind):
    from dmha.scoring.calibration import Calibration, write_calibration_file

    train, spk = _voices(10, 6, seed=3)
    b = fit_backend(train, spk.astype(str), kind=kind, lda_dim=6)
    bdir = write_backend(tmp_path / "backend", b)
    test, tspk = _voices(4, 3, seed=8)
    utts = [f"t{s}-{i}" for i, s in enumerate(tspk)]
    emb = _emb_dir(tmp_path / "emb", dict(zip(utts, test)))
    pairs = [(i, j) for i in range(len(utts)) for j in range(i + 1, len(utts))]
    labels = ["target" if tspk[i] == tspk[j] else "nontarget" for i, j in pairs]
    (tmp_path / "trials").write_text("".join(f"{utts[i]} {utts[j]} {lab}\n"
                                             for (i, j), lab in zip(pairs, labels)))
    score_file = tmp_path / "scores" / "t.lda.score"
    out = run_script(["steps/score.sh", "--backend", str(bdir), "--results", str(tmp_path / "results"),
                      str(tmp_path / "trials"), str(emb), str(score_file)])
    assert f"back-end {kind}6" in out.stdout
    got = np.array([float(line.split()[2]) for line in score_file.read_text().splitlines()])
    mapped = b.apply(test)
    ia, ib = np.array(pairs).T
    if kind == "lda":  # a dot product of the mapped rows is the score
        np.testing.assert_allclose(got, [float(mapped[i] @ mapped[j]) for i, j in pairs], atol=2e-6)
    np.testing.assert_allclose(got, b.pair_scores(mapped[ia], mapped[ib]), rtol=1e-5, atol=2e-5)
    tsv = (tmp_path / "results.tsv").read_text().splitlines()
    assert tsv[0].endswith("\tbackend") and tsv[1].endswith(f"\t{kind}6")
    # S-norm through the back-end: each side's scores against the cohort, in the back-end's scores
    cohort = _emb_dir(tmp_path / "cohort", {f"c{i}": v for i, v in enumerate(train[::6])})
    snormed = tmp_path / "scores" / "t.snorm.score"
    run_script(["steps/score.sh", "--backend", str(bdir), "--norm", "snorm", "--cohort",
                str(cohort / "xvector.scp"), str(tmp_path / "trials"), str(emb), str(snormed)])
    c = b.cross_scores(mapped, b.apply(train[::6]))
    mu, sd = c.mean(1), c.std(1)
    raw = b.pair_scores(mapped[ia], mapped[ib])
    want = 0.5 * ((raw - mu[ia]) / sd[ia] + (raw - mu[ib]) / sd[ib])
    got = np.array([float(line.split()[2]) for line in snormed.read_text().splitlines()])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # a calibration fitted on plain cosine scores does not apply to back-end scores
    cal = write_calibration_file(tmp_path / "calibration.yaml", Calibration(5.0, -1.0, {"norm": "none"}))
    bad = run_script(["steps/score.sh", "--backend", str(bdir), "--calibration", str(cal),
                      str(tmp_path / "trials"), str(emb), str(tmp_path / "scores" / "x.score")], check=False)
    assert bad.returncode == 1 and "plain cosine" in bad.stderr
    assert not (tmp_path / "scores" / "x.score").exists()


@pytest.mark.skipif(pytest.importorskip("onnxruntime") is None, reason="onnxruntime")
@pytest.mark.parametrize("kind", ["lda", "plda"])
def test_onnx_export_carries_the_backend(exp_with_training_embeddings, kind):
    import dmha
    from dmha.bin.train_backend import train_backend
    from dmha.export.onnx_export import export_onnx
    from dmha.export.runtime import OnnxSpeakerModel

    exp, data, emb = exp_with_training_embeddings
    train_backend(exp, data, emb, kind=kind, lda_dim=4)
    export_onnx(exp)
    onnx_model = OnnxSpeakerModel(exp / "onnx" / "model.onnx")
    torch_model = dmha.load_model(exp, device="cpu")
    assert onnx_model.backend.fingerprint() == torch_model.backend.fingerprint()
    assert onnx_model.backend.kind == torch_model.backend.kind == kind
    a, b = np.random.default_rng(1).normal(size=(2, 400)).astype(np.float32)
    assert onnx_model.score(a, b) == pytest.approx(torch_model.score(a, b), abs=1e-5)


def test_bench_backend_variants_table(tmp_path, capsys):
    """bench/backend_variants.py on fabricated runs: every back-end row; LDA and PLDA beat plain cosine."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("backend_variants", Path(__file__).parents[1] /
                                                  "bench/backend_variants.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    train, spk = _voices(20, 8, seed=0)
    test, tspk = _voices(6, 5, seed=1)
    data = tmp_path / "data"
    (data / "mini_train").mkdir(parents=True)
    (data / "t").mkdir()
    utts = [f"s{s:02d}-{i:03d}" for i, s in enumerate(spk)]
    (data / "mini_train" / "utt2spk").write_text("".join(f"{u} s{s:02d}\n" for u, s in zip(utts, spk)))
    tutts = [f"t{s}-{i:02d}" for i, s in enumerate(tspk)]
    pairs = [(i, j) for i in range(len(tutts)) for j in range(i + 1, len(tutts))]
    (data / "t" / "trials").write_text("".join(
        f"{tutts[i]} {tutts[j]} {'target' if tspk[i] == tspk[j] else 'nontarget'}\n" for i, j in pairs))
    exp = tmp_path / "exp"
    _emb_dir(exp / "embeddings" / "mini_train", dict(zip(utts, train)))
    _emb_dir(exp / "embeddings" / "t", dict(zip(tutts, test)))
    assert bench.main(["--data-root", str(data), "--sets", "t", "--dims", "8,0", str(exp)]) == 0
    rows = {line.split(" | ")[0].strip("| "): float(line.split(" | ")[1].split()[0])
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "EER" not in line}
    assert set(rows) == {"cosine", "mean", "lda8 shrinkage auto", "lda8 shrinkage none",
                         "lda19 shrinkage auto", "lda19 shrinkage none", "plda (lda19 shrinkage auto)"}
    assert rows["lda8 shrinkage none"] < rows["cosine"]
    assert rows["plda (lda19 shrinkage auto)"] < rows["cosine"]


@pytest.mark.parametrize("kind", ["none", "plda"])
def test_score_cli_enrolment_models_equal_the_api_score(tmp_path, kind):
    """steps/score.sh --enroll (Kaldi's enrolment spk2utt): a trial's first column names a model of several
    utterances; its score equals dmha.load_model().score([utts...], test) (pair_score), with S-norm too."""
    from dmha.scoring.backend import enrolment_models

    train, spk = _voices(10, 6, seed=3)
    b = fit_backend(train, spk.astype(str), kind="plda", lda_dim=6) if kind == "plda" else None
    opts = ["--backend", str(write_backend(tmp_path / "backend", b))] if b is not None else []
    test, tspk = _voices(4, 6, seed=8)
    utts = [f"t{s}-{i}" for i, s in enumerate(tspk)]
    emb = _emb_dir(tmp_path / "emb", dict(zip(utts, test)))
    enrol_rows = {f"m{s}": np.flatnonzero(tspk == s)[:3] for s in range(4)}
    probes = [i for s in range(4) for i in np.flatnonzero(tspk == s)[3:]]
    (tmp_path / "enroll").write_text("".join(f"{m} {' '.join(utts[i] for i in rows)}\n"
                                             for m, rows in enrol_rows.items()))
    trials = [(m, j) for m in enrol_rows for j in probes]
    label = {True: "target", False: "nontarget"}
    (tmp_path / "trials").write_text("".join(f"{m} {utts[j]} {label[m == f'm{tspk[j]}']}\n"
                                             for m, j in trials))
    out = tmp_path / "scores" / "t.score"
    run_script(["steps/score.sh", *opts, "--enroll", str(tmp_path / "enroll"), str(tmp_path / "trials"),
                str(emb), str(out)])
    got = np.array([float(line.split()[2]) for line in out.read_text().splitlines()])
    want = [pair_score(test[enrol_rows[m]], test[j], b) for m, j in trials]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # S-norm of model scores: the model's own cohort scores (by the count), the test side's as usual
    cohort_rows = train[::6]
    cohort = _emb_dir(tmp_path / "cohort", {f"c{i}": v for i, v in enumerate(cohort_rows)})
    snormed = tmp_path / "scores" / "t.snorm.score"
    run_script(["steps/score.sh", *opts, "--enroll", str(tmp_path / "enroll"), "--norm", "snorm",
                "--cohort", str(cohort / "xvector.scp"), str(tmp_path / "trials"), str(emb), str(snormed)])
    mapped = b.apply(test) if b is not None else test / np.linalg.norm(test, axis=1, keepdims=True)
    mapped_cohort = (b.apply(cohort_rows) if b is not None
                     else cohort_rows / np.linalg.norm(cohort_rows, axis=1, keepdims=True))
    models, counts = enrolment_models(mapped, list(enrol_rows.values()), b)
    cm = cross_scores(models, mapped_cohort, b, counts)
    ct = cross_scores(mapped, mapped_cohort, b)
    mi = np.array([int(m[1:]) for m, _ in trials])
    ti = np.array([j for _, j in trials])
    norm_want = 0.5 * ((got - cm.mean(1)[mi]) / cm.std(1)[mi] + (got - ct.mean(1)[ti]) / ct.std(1)[ti])
    got_norm = np.array([float(line.split()[2]) for line in snormed.read_text().splitlines()])
    np.testing.assert_allclose(got_norm, norm_want, rtol=1e-4, atol=1e-4)
    # a model whose utterance has no embedding, or that the enrolment file lacks: one line naming it
    (tmp_path / "enroll").write_text(f"m0 {utts[0]} ghost-utt\nm1 {utts[6]}\n")
    bad = run_script(["steps/score.sh", *opts, "--enroll", str(tmp_path / "enroll"), str(tmp_path / "trials"),
                      str(emb), str(tmp_path / "scores" / "bad.score")], check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "first: m0 m2 m3" in bad.stderr and "--allow-missing" in bad.stderr
    assert not (tmp_path / "scores" / "bad.score").exists()
    # skipped with --allow-missing: the one-utterance model m1 scores as its utterance does
    run_script(["steps/score.sh", *opts, "--enroll", str(tmp_path / "enroll"), "--allow-missing", "true",
                str(tmp_path / "trials"), str(emb), str(tmp_path / "scores" / "m1.score")])
    rows = [line.split() for line in (tmp_path / "scores" / "m1.score").read_text().splitlines()]
    assert {r[0] for r in rows} == {"m1"} and len(rows) == len(probes)
    single = [pair_score(test[6], test[j], b) for j in probes]
    np.testing.assert_allclose([float(r[2]) for r in rows], single, rtol=1e-4, atol=1e-4)
