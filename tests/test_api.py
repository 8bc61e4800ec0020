"""Python API (dmha.load_model) and the console tools dmha-embed, dmha-verify, compute_threshold.

The API's embedding of a wav equals the stage-4 ark embedding of the same file (features from stage 1),
also for a file at another sample rate; score() is the cosine; the threshold comes from
threshold.yaml written by compute_threshold (the EER point of the validation trials).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from conftest import REPO, run_script  # noqa: E402
from extract_fixtures import cosine_rows, make_feats_data_dir, make_tiny_exp, make_wav_data_dir  # noqa: E402


@pytest.fixture(scope="module")
def stage4(tmp_path_factory):
    """A wav data dir (16 and 8 kHz files) through stage 1 and stage 4 with a tiny exp."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("api")
    exp = make_tiny_exp(root / "exp")
    data = make_wav_data_dir(root / "data", n_spk=2, n_utt=3, rates=(16000, 8000))
    run_script(["steps/make_fbank.sh", "--nj", "1", str(data)])
    emb = root / "emb"
    run_script(["steps/extract_embeddings.sh", "--nj", "2", "--device", "cpu", str(exp), str(data), str(emb)])
    wavs = dict(line.split(None, 1) for line in (data / "wav.scp").read_text().splitlines())
    ark = {k: np.array(v) for k, v in kaldiio.load_scp(str(emb / "xvector.scp")).items()}
    return root, exp, wavs, ark


def test_import_dmha_is_light():
    code = ("import sys, dmha; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(callable(dmha.load_model))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_embed_equals_stage4_ark(stage4):
    import dmha

    _, exp, wavs, ark = stage4
    model = dmha.load_model(exp, device="cpu")
    assert sorted(ark) == sorted(wavs)
    for utt, path in wavs.items():
        e = model.embed(path)
        assert e.shape == (400,) and e.dtype == np.float32
        assert cosine_rows(e, ark[utt]) >= 0.9999, utt
        np.testing.assert_allclose(e, ark[utt], rtol=1e-4, atol=1e-5)


def test_embed_array_with_rate_and_score(stage4):
    import dmha

    _, exp, wavs, ark = stage4
    model = dmha.load_model(exp, device="cpu")
    utt8k = next(u for u, p in wavs.items() if sf.info(p).samplerate == 8000)
    x, sr = sf.read(wavs[utt8k], dtype="float32")
    np.testing.assert_allclose(model.embed(x, sr=sr), ark[utt8k], rtol=1e-4, atol=1e-5)
    xi, _ = sf.read(wavs[utt8k], dtype="int16")  # int16 PCM is scaled to [-1, 1]
    np.testing.assert_allclose(model.embed(xi, sr=sr), ark[utt8k], rtol=1e-4, atol=1e-5)

    a, b = sorted(wavs)[:2]
    s = model.score(ark[a], ark[b])
    expected = float(np.dot(ark[a], ark[b]) / np.linalg.norm(ark[a]) / np.linalg.norm(ark[b]))
    assert s == pytest.approx(expected, abs=1e-6)
    assert model.score(wavs[a], wavs[b]) == pytest.approx(expected, abs=1e-4)
    assert model.score(wavs[a], ark[a]) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(Exception, match="400"):
        model.score(np.ones(3), ark[a])


def _lists_dir(root: Path) -> Path:
    """A stage-2-like lists dir: val_feats.scp + val_trials (all pairs of 3 speakers x 3 utterances)."""
    data = make_feats_data_dir(root / "valdata", [60, 80, 70, 90, 65, 75, 85, 95, 55], seed=5)
    lists = root / "lists"
    lists.mkdir()
    (lists / "val_feats.scp").write_text((data / "feats.scp").read_text())
    utts = [line.split() for line in (data / "utt2spk").read_text().splitlines()]
    rows = [f"{a[0]} {b[0]} {'target' if a[1] == b[1] else 'nontarget'}\n"
            for i, a in enumerate(utts) for b in utts[i + 1:]]
    (lists / "val_trials").write_text("".join(rows))
    return lists


def test_threshold_from_validation_trials(stage4, tmp_path):
    import dmha
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp
    from dmha.scoring.cosine import cosine_scores
    from dmha.scoring.metrics import compute_eer
    from dmha.training.loop import ValidationSet

    _, exp_src, _, _ = stage4
    exp = make_tiny_exp(tmp_path / "exp")  # its own exp: threshold.yaml must not leak into other tests
    assert dmha.load_model(exp, device="cpu").threshold is None
    lists = _lists_dir(tmp_path)
    # Both sides on one torch thread (this process pins 1 in the fixture): oneDNN picks its kernels by
    # CPU and thread count, so float32 scores computed with other threads differ in the last bits.
    out = run_script(["steps/compute_threshold.sh", "--device", "cpu", str(exp), str(lists)],
                     env={"OMP_NUM_THREADS": "1"})
    assert "threshold" in out.stdout
    stored = yaml.safe_load((exp / "threshold.yaml").read_text())
    val = ValidationSet(lists)
    emb = embed_utterances(load_exp(exp, "cpu").model, val.feats)
    scores = cosine_scores(emb, val.enroll, val.test)
    eer, thr = compute_eer(scores, val.labels)
    # What compute_threshold promises: the EER operating point of these trials. The EER is a count over
    # 36 trials (exact); the threshold is a cosine score, equal up to float32 rounding of the embeddings
    # (1e-5 seen across CPUs and thread counts; 1e-4 is far below the gaps between these scores).
    assert stored["eer"] == pytest.approx(100 * eer, abs=1e-4)
    assert stored["threshold"] == pytest.approx(thr, abs=1e-4)
    gaps = np.abs(scores - stored["threshold"])
    decided = scores[gaps > 1e-4] >= stored["threshold"]
    assert np.array_equal(decided, scores[gaps > 1e-4] >= thr)  # the same decisions on every clear trial
    assert stored["n_target"] == 9 and stored["n_nontarget"] == 27 and stored["model_step"] == 7
    assert dmha.load_model(exp, device="cpu").threshold == stored["threshold"]
    # a new best model (another step) makes the stored threshold stale: ignored
    make_tiny_exp(exp, step=8)
    (exp / "threshold.yaml").write_text(yaml.safe_dump(stored))
    assert dmha.load_model(exp, device="cpu").threshold is None


def _verify(*args: str) -> subprocess.CompletedProcess:
    return run_script([sys.executable, "-m", "dmha.bin.verify", *args], check=False)


def test_verify_prints_score_and_decision(stage4, tmp_path):
    import dmha

    _, exp, wavs, ark = stage4
    a, b = sorted(wavs)[0], sorted(wavs)[-1]
    s = dmha.load_model(exp, device="cpu").score(ark[a], ark[b])
    for thr, word in ((s - 0.01, "same"), (s + 0.01, "different")):
        out = _verify("--exp", str(exp), "--device", "cpu", "--threshold", f"{thr:.6f}", wavs[a], wavs[b])
        assert out.returncode == 0, out.stderr
        fields = out.stdout.split()
        assert float(fields[0]) == pytest.approx(s, abs=1e-3) and fields[1] == word
    # no threshold stored and none given: one clear line, no traceback
    out = _verify("--exp", str(exp), "--device", "cpu", wavs[a], wavs[b])
    assert out.returncode == 1 and "compute_threshold.sh" in out.stderr and "Traceback" not in out.stderr
    # the stored threshold is used when present
    exp2 = make_tiny_exp(tmp_path / "exp2")
    (exp2 / "threshold.yaml").write_text(yaml.safe_dump({"threshold": -1.0, "model_step": 7}))
    out = _verify("--exp", str(exp2), "--device", "cpu", wavs[a], wavs[b])
    assert out.returncode == 0 and out.stdout.split()[1] == "same" and "threshold.yaml" in out.stdout
    out = _verify("--exp", str(exp), "--device", "cpu", "--threshold", "0", wavs[a],
                  str(tmp_path / "nope.wav"))
    assert out.returncode == 1 and "nope.wav" in out.stderr and "Traceback" not in out.stderr
    # several enrolment recordings, then the test one: one model, the mean of their unit embeddings
    enrol = sorted(wavs)[:3]
    model = dmha.load_model(exp, device="cpu")
    units = [ark[u] / np.linalg.norm(ark[u]) for u in enrol]
    mean = np.mean(units, axis=0)
    want = float(mean @ ark[b] / np.linalg.norm(mean) / np.linalg.norm(ark[b]))
    assert model.score([ark[u] for u in enrol], ark[b]) == pytest.approx(want, abs=1e-5)
    assert model.score(np.stack([ark[u] for u in enrol]), ark[b]) == pytest.approx(want, abs=1e-5)
    assert abs(want - s) > 1e-4  # not the first recording's score
    out = _verify("--exp", str(exp), "--device", "cpu", "--threshold", "0", *(wavs[u] for u in enrol),
                  wavs[b])
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[0]) == pytest.approx(want, abs=1e-3)
    assert "one model of 3 enrolment recordings" in out.stdout
    out = _verify("--exp", str(exp), "--device", "cpu", wavs[a])
    assert out.returncode == 2 and "at least two recordings" in out.stderr


def test_embed_cli_ark_and_npy(stage4, tmp_path):
    _, exp, wavs, ark = stage4
    some = sorted(wavs)[:3]
    run_script([sys.executable, "-m", "dmha.bin.embed", "--exp", str(exp), "--device", "cpu", "-o",
                str(tmp_path / "a"), *[wavs[u] for u in some]])
    got = {k: np.array(v) for k, v in kaldiio.load_scp(str(tmp_path / "a" / "xvector.scp")).items()}
    assert sorted(got) == some  # key = file name without extension (= utt id here)
    for u in some:
        np.testing.assert_allclose(got[u], ark[u], rtol=1e-4, atol=1e-5)
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"{u} {wavs[u]}\n" for u in some))
    run_script([sys.executable, "-m", "dmha.bin.embed", "--exp", str(exp), "--device", "cpu", "--scp",
                str(scp), "--format", "npy", "-o", str(tmp_path / "n")])
    for u in some:
        np.testing.assert_allclose(np.load(tmp_path / "n" / f"{u}.npy"), ark[u], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("module", ["embed", "verify", "compute_threshold", "extract_embeddings"])
def test_cli_help(module):
    out = run_script([sys.executable, "-m", f"dmha.bin.{module}", "--help"])
    assert "usage:" in out.stdout
    if module == "verify":
        assert "threshold.yaml" in out.stdout and "validation trials" in out.stdout
