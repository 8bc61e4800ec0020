"""Cosine scoring, S-norm / AS-norm against explicit loops, missing embeddings, steps/score.sh end to end."""

from __future__ import annotations

import math
import re

import kaldiio
import numpy as np
import pytest
from conftest import run_script

from dmha.common.errors import UserError
from dmha.scoring.cosine import score_trials
from dmha.scoring.metrics import compute_metrics
from dmha.scoring.results import append_result, latest_results, read_results


def _cos(a, b) -> float:
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _mean_std(values) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def _toy(seed: int = 0, n_spk: int = 4, per_spk: int = 3, dim: int = 6):
    """Embeddings clustered by speaker, all pairs as trials, and a random cohort."""
    rng = np.random.default_rng(seed)
    emb = {}
    for s in range(n_spk):
        centre = rng.normal(size=dim)
        for j in range(per_spk):
            emb[f"spk{s}-utt{j}"] = (centre + 0.8 * rng.normal(size=dim)).astype(np.float32)
    utts = sorted(emb)
    enroll, test, labels = [], [], []
    for i, a in enumerate(utts):
        for b in utts[i + 1:]:
            enroll.append(a)
            test.append(b)
            labels.append(a.split("-")[0] == b.split("-")[0])
    cohort = {f"coh{k}": rng.normal(size=dim).astype(np.float32) for k in range(7)}
    return emb, enroll, test, np.array(labels), cohort


def test_cosine_matches_loop_and_chunking():
    emb, enroll, test, _, _ = _toy()
    expected = [_cos(emb[e], emb[t]) for e, t in zip(enroll, test)]
    for chunk in (1, 5, 100_000):
        got = score_trials(enroll, test, emb, chunk_size=chunk)
        assert got.kept.all() and got.n_skipped == 0
        np.testing.assert_allclose(got.scores, expected, atol=1e-6)


# Embeddings are float32 (as stored in the ark files): normalised scores carry float32 relative error.


def test_snorm_matches_hand_computation():
    emb, enroll, test, _, cohort = _toy(1)
    got = score_trials(enroll, test, emb, norm="snorm", cohort=cohort).scores
    for i, (e, t) in enumerate(zip(enroll, test)):
        mu_e, sd_e = _mean_std([_cos(emb[e], c) for c in cohort.values()])
        mu_t, sd_t = _mean_std([_cos(emb[t], c) for c in cohort.values()])
        s = _cos(emb[e], emb[t])
        assert got[i] == pytest.approx(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("top_n", [2, 3, 5])
def test_asnorm_matches_hand_computation(top_n):
    emb, enroll, test, _, cohort = _toy(2)
    got = score_trials(enroll, test, emb, norm="asnorm", cohort=cohort, top_n=top_n).scores
    for i, (e, t) in enumerate(zip(enroll, test)):
        top_e = sorted((_cos(emb[e], c) for c in cohort.values()), reverse=True)[:top_n]
        top_t = sorted((_cos(emb[t], c) for c in cohort.values()), reverse=True)[:top_n]
        mu_e, sd_e = _mean_std(top_e)
        mu_t, sd_t = _mean_std(top_t)
        s = _cos(emb[e], emb[t])
        assert got[i] == pytest.approx(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t), rel=1e-5, abs=1e-5)


def test_asnorm_with_whole_cohort_equals_snorm():
    emb, enroll, test, _, cohort = _toy(3)
    a = score_trials(enroll, test, emb, norm="asnorm", cohort=cohort, top_n=len(cohort)).scores
    s = score_trials(enroll, test, emb, norm="snorm", cohort=cohort).scores
    np.testing.assert_allclose(a, s, atol=1e-9)
    # and a smaller top-n really changes the scores
    b = score_trials(enroll, test, emb, norm="asnorm", cohort=cohort, top_n=3).scores
    assert not np.allclose(a, b)


def test_missing_embeddings_error_names_count_and_keys():
    emb, enroll, test, _, _ = _toy()
    for k in ("spk0-utt1", "spk2-utt0"):
        del emb[k]
    with pytest.raises(UserError) as err:
        score_trials(enroll, test, emb)
    msg = str(err.value)
    assert msg.startswith("2 of 12 trial utterances have no embedding")
    assert "spk0-utt1" in msg and "spk2-utt0" in msg and "--allow-missing" in msg


def test_allow_missing_skips_only_affected_trials():
    emb, enroll, test, _, _ = _toy()
    del emb["spk1-utt2"]
    got = score_trials(enroll, test, emb, allow_missing=True)
    affected = np.array([e == "spk1-utt2" or t == "spk1-utt2" for e, t in zip(enroll, test)])
    np.testing.assert_array_equal(got.kept, ~affected)
    assert got.n_skipped == 11 and got.missing_keys == ["spk1-utt2"]
    expected = [_cos(emb[e], emb[t]) for e, t, a in zip(enroll, test, affected) if not a]
    np.testing.assert_allclose(got.scores, expected, atol=1e-6)


def test_bad_inputs():
    emb, enroll, test, _, cohort = _toy()
    with pytest.raises(UserError, match="needs a cohort"):
        score_trials(enroll, test, emb, norm="snorm")
    with pytest.raises(UserError, match="unknown score normalisation"):
        score_trials(enroll, test, emb, norm="znorm")
    emb["spk0-utt0"] = np.zeros(6, np.float32)
    with pytest.raises(UserError, match="zero or not finite.*spk0-utt0"):
        score_trials(enroll, test, emb)
    emb["spk0-utt0"] = np.ones(5, np.float32)
    with pytest.raises(UserError, match="dimension"):
        score_trials(enroll, test, emb)


def test_results_latest_entry_per_set_and_norm(tmp_path):
    res = tmp_path / "results"
    base = {"mindcf_0.01": 0.5, "mindcf_0.001": 0.6, "n_trials": 10, "n_target": 4, "n_nontarget": 6,
            "score_file": "x.score"}
    append_result(res, {**base, "set": "a", "norm": "none", "eer": 5.0})
    append_result(res, {**base, "set": "b", "norm": "none", "eer": 7.0})
    append_result(res, {**base, "set": "a", "norm": "none", "eer": 3.0})
    append_result(res, {**base, "set": "a", "norm": "asnorm", "eer": 2.5})
    rows = latest_results(read_results(res))
    assert [(r["set"], r["norm"], r["eer"]) for r in rows] == [("a", "none", 3.0), ("b", "none", 7.0),
                                                               ("a", "asnorm", 2.5)]
    assert len(res.read_text().splitlines()) == 4


def _write_emb_dir(path, emb: dict, name: str = "xvector"):
    path.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{path}/{name}.ark,{path}/{name}.scp") as w:
        for k in sorted(emb):
            w(k, emb[k])


def test_score_sh_end_to_end(tmp_path):
    emb, enroll, test, labels, cohort = _toy(4)
    emb_dir = tmp_path / "exp/embeddings/toy"
    _write_emb_dir(emb_dir, emb)
    _write_emb_dir(tmp_path / "exp/embeddings/train", cohort, "spk_xvector")
    trials = tmp_path / "trials"
    trials.write_text("".join(f"{e} {t} {'target' if lab else 'nontarget'}\n"
                              for e, t, lab in zip(enroll, test, labels)))
    score_file = tmp_path / "exp/scores/toy.score"
    out = run_script(["steps/score.sh", str(trials), str(emb_dir), str(score_file)]).stdout

    lines = [ln.split() for ln in score_file.read_text().splitlines()]
    assert [(e, t) for e, t, _, _ in lines] == list(zip(enroll, test))
    assert [lab == "target" for *_, lab in lines] == list(labels)
    scores = np.array([float(s) for _, _, s, _ in lines])
    np.testing.assert_allclose(scores, [_cos(emb[e], emb[t]) for e, t in zip(enroll, test)], atol=1e-5)

    m = compute_metrics(scores, labels)
    assert f"EER {m['eer']:.2f}%" in out and f"minDCF(0.01) {m['mindcf_0.01']:.4f}" in out
    results = (tmp_path / "exp/results").read_text().splitlines()
    assert results == [f"toy none EER={m['eer']:.2f}% minDCF0.01={m['mindcf_0.01']:.4f} "
                       f"minDCF0.001={m['mindcf_0.001']:.4f} ({len(enroll)} trials)"]
    png = tmp_path / "exp/scores/toy.det.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    # AS-norm run with an explicit results file; then a missing embedding: error, then skipped
    cohort_scp = tmp_path / "exp/embeddings/train/spk_xvector.scp"
    run_script(["steps/score.sh", "--norm", "asnorm", "--cohort", str(cohort_scp), "--top-n", "3",
                str(trials), str(emb_dir), str(score_file)])
    with open(trials, "a") as f:
        f.write("spk0-utt0 nosuch-utt target\n")
    before = score_file.read_text()
    proc = run_script(["steps/score.sh", str(trials), str(emb_dir), str(score_file)], check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert "ERROR: 1 of 13 trial utterances have no embedding" in err and "nosuch-utt" in err
    assert "Traceback" not in proc.stderr
    assert score_file.read_text() == before          # nothing half-written
    run_script(["steps/score.sh", "--allow-missing", "true", str(trials), str(emb_dir), str(score_file)])
    assert len(score_file.read_text().splitlines()) == len(enroll)
    results = (tmp_path / "exp/results").read_text().splitlines()
    assert len(results) == 3 and results[1].startswith("toy asnorm EER=")
    assert results[2].endswith(f"({len(enroll)} trials, 1 skipped: missing embeddings)")

    ref = tmp_path / "paper.yaml"
    ref.write_text("toy: {eer: 3.23, mindcf_0.01: 0.0028}\n")
    table = run_script(["python", "-m", "dmha.bin.summarize_results", "--reference", str(ref),
                        str(tmp_path / "exp/results")]).stdout
    rows = [r for r in table.splitlines() if r.startswith("| toy")]
    assert len(rows) == 2                     # latest per (set, norm, back-end): none (re-run) and asnorm
    assert re.search(rf"\| toy \| none \| cosine \| {m['eer']:.2f} \| .* \| 3\.23 \| 0\.0028 \|", rows[0])
    assert "1 skipped" in rows[0] and rows[1].startswith("| toy | asnorm |")


def test_score_sh_usage_errors(tmp_path):
    proc = run_script(["steps/score.sh", "only-one-arg"], check=False)
    assert proc.returncode == 1 and "Usage:" in proc.stderr
    proc = run_script(["steps/score.sh", "--norm", "snorm", "t", "e", "s"], check=False)
    assert proc.returncode != 0 and "needs --cohort" in proc.stderr
