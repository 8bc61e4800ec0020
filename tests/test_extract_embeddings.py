"""Stage 4: steps/extract_embeddings.sh and dmha.embed.xvectors (test_extract.py: dmha.embed.batched).

Batched extraction equals batch-1 extraction, every embedding is readable with kaldiio, speaker means
are the means of the unit-norm utterance embeddings, the length cap behaves as documented, re-runs skip
or redo atomically, and bad input gives one line naming the file.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from dmha.embed.xvectors import chunk_bounds, embed_utterances, l2_normalize, speaker_means
from dmha.experiment import BEST_MODEL, load_exp
from dmha.features.fbank import normalize_features

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_script  # noqa: E402
from extract_fixtures import cosine_rows, make_feats_data_dir, make_tiny_exp  # noqa: E402

LENGTHS = [37, 120, 301, 64, 18, 250, 97, 64, 155, 412, 5, 88]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("extract")
    exp = make_tiny_exp(root / "exp")
    data = make_feats_data_dir(root / "data", LENGTHS)
    return root, exp, data


def _load_feats(data: Path) -> tuple[list[str], list[np.ndarray]]:
    table = kaldiio.load_scp(str(data / "feats.scp"))
    keys = sorted(table)
    return keys, [np.array(table[k]) for k in keys]


def _ark(emb_dir: Path, name: str = "xvector") -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in kaldiio.load_scp(str(emb_dir / f"{name}.scp")).items()}


def test_best_model_name_matches_training():
    import dmha.training.loop

    assert dmha.training.loop.BEST == BEST_MODEL


def test_batched_equals_batch1_in_python(setup):
    _, exp_dir, data = setup
    exp = load_exp(exp_dir, "cpu")
    _, feats = _load_feats(data)
    batched = embed_utterances(exp.model, feats, batch_frames=100000, batch_size=64)
    single = embed_utterances(exp.model, feats, batch_frames=1, batch_size=1)
    assert batched.shape == (len(LENGTHS), 400)
    cos = cosine_rows(batched, single)
    assert cos.min() >= 0.9999, cos
    # Distinct utterances give distinct embeddings (the comparison above is not trivially true).
    assert cosine_rows(batched[:-1], batched[1:]).max() < 0.999


def test_script_outputs_batched_equals_batch1_and_means(setup):
    root, exp, data = setup
    a, b = root / "emb_batched", root / "emb_single"
    out = run_script(["steps/extract_embeddings.sh", "--nj", "3", "--device", "cpu", str(exp), str(data),
                      str(a)])
    assert "12 utterance embeddings (dim 400) and 4 speaker means" in out.stdout
    run_script(["steps/extract_embeddings.sh", "--nj", "1", "--batch-size", "1", "--device", "cpu",
                str(exp), str(data), str(b)])
    ea, eb = _ark(a), _ark(b)
    utts = [line.split()[0] for line in (data / "utt2spk").read_text().splitlines()]
    assert sorted(ea) == sorted(utts) and sorted(eb) == sorted(utts)
    scp_keys = [line.split()[0] for line in (a / "xvector.scp").read_text().splitlines()]
    assert scp_keys == sorted(utts, key=str.encode)  # C-sorted
    assert all(Path(line.split()[1]).is_absolute() for line in (a / "xvector.scp").read_text().splitlines())
    for u in utts:
        assert ea[u].shape == (400,) and ea[u].dtype == np.float32 and np.isfinite(ea[u]).all()
        assert cosine_rows(ea[u], eb[u]) >= 0.9999, u
    # the ark holds what the model computes in Python
    keys, feats = _load_feats(data)
    ref = embed_utterances(load_exp(exp, "cpu").model, feats)
    np.testing.assert_allclose(np.stack([ea[k] for k in keys]), ref, rtol=1e-4, atol=1e-5)

    # per-speaker means of the L2-normalised utterance embeddings, and counts
    spk2utt = {line.split()[0]: line.split()[1:] for line in (data / "spk2utt").read_text().splitlines()}
    means = _ark(a, "spk_xvector")
    assert sorted(means) == sorted(spk2utt)
    for spk, us in spk2utt.items():
        expected = np.mean([ea[u] / np.linalg.norm(ea[u]) for u in us], axis=0)
        np.testing.assert_allclose(means[spk], expected, rtol=1e-5, atol=1e-6)
        assert np.linalg.norm(means[spk]) <= 1.0 + 1e-6
    counts = dict(line.split() for line in (a / "num_utts.ark").read_text().splitlines())
    assert counts == {s: str(len(us)) for s, us in spk2utt.items()}
    assert (a / "log" / "extract.3.log").is_file() and not (a / "jobs").exists()


def test_rerun_skips_and_force_redoes(setup):
    root, exp, data = setup
    emb = root / "emb_rerun"
    cmd = ["steps/extract_embeddings.sh", "--nj", "1", "--device", "cpu", str(exp), str(data), str(emb)]
    run_script(cmd)
    first = (emb / "xvector.scp").stat().st_mtime_ns
    out = run_script(cmd)
    assert "up to date" in out.stdout and (emb / "xvector.scp").stat().st_mtime_ns == first
    # a new best model makes the outputs stale
    (exp / "best.pt").touch()
    out = run_script(cmd[:1] + ["--max-chunk-frames", "100"] + cmd[1:])
    assert "up to date" not in out.stdout and (emb / "xvector.scp").stat().st_mtime_ns != first
    # ... and so does a changed cap (it changes long utterances' embeddings); --force redoes anyway
    out = run_script(cmd[:1] + ["--force", "true"] + cmd[1:])
    assert "up to date" not in out.stdout


def test_failed_run_leaves_no_complete_looking_output(setup, tmp_path):
    root, exp, data = setup
    bad = make_feats_data_dir(tmp_path / "bad", [40, 50, 60, 70])
    emb = tmp_path / "emb"
    run_script(["steps/extract_embeddings.sh", "--nj", "1", "--device", "cpu", str(exp), str(bad), str(emb)])
    assert (emb / "xvector.scp").is_file()
    # corrupt one utterance's features (the ark it points to is gone): the re-run must fail, name the
    # utterance, and must not leave the previous xvector.scp looking like the output of this run
    lines = (bad / "feats.scp").read_text().splitlines()
    lines[2] = lines[2].split()[0] + f" {tmp_path}/missing.ark:12"
    (bad / "feats.scp").write_text("\n".join(lines) + "\n")
    out = run_script(["steps/extract_embeddings.sh", "--nj", "2", "--device", "cpu", str(exp), str(bad),
                      str(emb)], check=False)
    assert out.returncode != 0
    failed_log = "".join(p.read_text() for p in (emb / "log").glob("extract.*.log"))
    assert "spk00-u002" in failed_log and "ERROR" in failed_log and "Traceback" not in failed_log
    for name in ("xvector.scp", "spk_xvector.scp", "num_utts.ark"):
        assert not (emb / name).exists(), name


def test_missing_features_is_one_clear_line(setup, tmp_path):
    _, exp, _ = setup
    data = tmp_path / "nofeats"
    data.mkdir()
    (data / "utt2spk").write_text("a-1 a\n")
    out = run_script(["steps/extract_embeddings.sh", str(exp), str(data), str(tmp_path / "emb")], check=False)
    assert out.returncode == 1
    assert "feats.scp not found" in out.stderr and "make_fbank.sh" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_script(["steps/extract_embeddings.sh", str(tmp_path / "noexp"), str(data), str(tmp_path / "e")],
                     check=False)
    assert out.returncode == 1 and "noexp/config.yaml not found" in out.stderr


def test_features_of_other_settings_than_the_model_are_refused(setup, tmp_path):
    _, exp, data = setup
    other = tmp_path / "other"
    shutil.copytree(data, other)
    (other / "fbank.yaml").write_text("n_mels: 40\n")
    emb = tmp_path / "emb"
    out = run_script(["steps/extract_embeddings.sh", str(exp), str(other), str(emb)], check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "other/fbank.yaml" in out.stderr and "n_mels=40 (expected 80)" in out.stderr
    assert not (emb / "xvector.scp").exists()


def test_usage_and_help(tmp_path):
    out = run_script(["steps/extract_embeddings.sh", "a", "b"], check=False)
    assert out.returncode == 1 and "Usage:" in out.stderr and "--max-chunk-frames" in out.stderr
    out = run_script(["steps/extract_embeddings.sh", "--help"], check=False)
    assert "Usage:" in out.stdout + out.stderr
    out = run_script([sys.executable, "-m", "dmha.bin.extract_embeddings", "job", "--help"])
    assert "--batch-frames" in out.stdout


@pytest.mark.parametrize("t,n", [(100, 0), (100, 100), (101, 100), (250, 100), (412, 64), (7, 3)])
def test_chunk_bounds(t, n):
    b = chunk_bounds(t, n)
    assert b[0][0] == 0 and b[-1][1] == t
    assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))  # contiguous, no overlap
    sizes = [e - s for s, e in b]
    if n == 0 or t <= n:
        assert b == [(0, t)]
    else:
        assert len(b) == math.ceil(t / n) and max(sizes) <= n and max(sizes) - min(sizes) <= 1


def test_chunking_cap_is_mean_of_unit_chunk_embeddings(setup):
    _, exp_dir, data = setup
    exp = load_exp(exp_dir, "cpu")
    _, feats = _load_feats(data)
    cap = 100
    capped = embed_utterances(exp.model, feats, max_chunk_frames=cap)
    plain = embed_utterances(exp.model, feats)
    n_long = 0
    for i, f in enumerate(feats):
        t = f.shape[0]
        if t <= cap:  # short utterances: exactly the uncapped embedding
            np.testing.assert_allclose(capped[i], plain[i], rtol=1e-5, atol=1e-6)
            continue
        n_long += 1
        whole = normalize_features(f, "cmn")  # CMN over the whole utterance, then cut
        chunks = [embed_utterances(exp.model, [whole[s:e]], norm="none")[0] for s, e in chunk_bounds(t, cap)]
        expected = l2_normalize(np.stack(chunks)).mean(axis=0)
        assert cosine_rows(capped[i], expected) >= 0.9999
        np.testing.assert_allclose(capped[i], expected, rtol=1e-3, atol=2e-4)
        assert cosine_rows(capped[i], plain[i]) < 0.99999  # the cap did change long utterances
    assert n_long == 5
    with pytest.raises(Exception, match="max-chunk-frames"):
        chunk_bounds(10, -1)


def test_speaker_means_missing_utterance_is_named():
    emb = {"a-1": np.ones(4, np.float32)}
    with pytest.raises(Exception, match="a-2"):
        speaker_means(emb, {"a": ["a-1", "a-2"]})
    means, counts = speaker_means({"a-1": np.array([3.0, 4.0]), "a-2": np.array([0.0, 2.0])},
                                  {"a": ["a-1", "a-2"]})
    np.testing.assert_allclose(means["a"], [0.3, 0.9])
    assert counts == {"a": 2}


@pytest.mark.slow
def test_exp_of_real_training_loads_and_extracts(tmp_path):
    """A best.pt written by dmha.training.loop itself (1 tiny epoch) goes through extraction."""
    from train_fixtures import N_MELS, make_corpus, tiny_config

    train_dir, val_dir = make_corpus(tmp_path, n_spk=4, n_utt=8)
    conf = tiny_config(tmp_path / "conf.yaml", max_epochs=1)
    lists, exp = tmp_path / "lists", tmp_path / "exp"
    run_script([sys.executable, "-m", "dmha.bin.prepare_lists", "--config", str(conf), str(train_dir),
                str(val_dir), str(lists)])
    run_script([sys.executable, "-m", "dmha.bin.train", "--device", "cpu", "--config", str(conf),
                str(lists), str(exp)], env={"OMP_NUM_THREADS": "1"})
    emb = tmp_path / "emb"
    run_script(["steps/extract_embeddings.sh", "--nj", "1", "--device", "cpu", str(exp), str(val_dir),
                str(emb)])
    table = _ark(emb)
    assert len(table) == 12 and all(v.shape == (32,) for v in table.values())
    assert load_exp(exp, "cpu").model.cfg.in_dim == N_MELS
