"""Deployment (issue 16): ONNX export, the torch-free onnxruntime path, and its bad-input handling.

What is pinned: the numpy log-mel equals dmha.features.fbank; every pooling and both dense variants
export and give torch's embeddings on padded batches of other shapes than the trace (and a padded
utterance its alone-embedding); dmha-embed/dmha-verify --onnx run with torch unimportable;
steps/extract_embeddings.sh --backend onnx writes the torch backend's keys and values; bad model
files, features of another setting, audio of another rate and failed exports give one line and
write nothing.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from dmha.common.errors import UserError
from dmha.export import metadata as meta
from dmha.export.onnx_export import export_onnx
from dmha.export.runtime import OnnxSpeakerModel
from dmha.features.config import FbankConfig
from dmha.features.fbank import compute_fbank
from dmha.features.melbank import logmel_numpy

sys.path.insert(0, str(Path(__file__).parent))
from conftest import REPO, run_script  # noqa: E402
from extract_fixtures import (  # noqa: E402
    cosine_rows,
    make_feats_data_dir,
    make_tiny_exp,
    make_wav_data_dir,
    synth_wave,
)

pytest.importorskip("onnxruntime")
LENGTHS = [37, 120, 301, 64, 18, 250, 97, 64, 155, 5]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("onnx")
    exp = make_tiny_exp(root / "exp")
    (exp / "threshold.yaml").write_text("threshold: 0.25\nmodel_step: 7\n")
    export_onnx(exp)
    return root, exp


def _torch_embeddings(exp: Path, feats: list[np.ndarray]) -> np.ndarray:
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp

    e = load_exp(exp, "cpu")
    return embed_utterances(e.model, feats, norm=e.norm)


@pytest.mark.parametrize("cfg", [FbankConfig(), FbankConfig(n_mels=40, win_length=200, fmax=3800.0,
                                                             preemphasis=0.9, sample_rate=8000, n_fft=256,
                                                             hop_length=80, fmin=20.0)])
def test_numpy_logmel_equals_the_torch_features(cfg):
    rng = np.random.default_rng(0)
    for n in (cfg.n_fft, cfg.n_fft + 1, 16000 + 37, 3 * 16000):
        wave = synth_wave(rng, n / cfg.sample_rate, cfg.sample_rate, 120.0)[:n]
        wave = np.concatenate([wave, np.zeros(n - len(wave), np.float32)])
        ref = compute_fbank(wave, cfg).numpy()
        got = logmel_numpy(wave, cfg)
        assert got.shape == ref.shape == (cfg.num_frames(n), cfg.n_mels)
        np.testing.assert_allclose(got, ref, atol=2e-4, rtol=0)


@pytest.mark.parametrize("pooling", ["attention", "mha", "dmha", "stats"])
@pytest.mark.parametrize("dense", ["reference", "paper"])
def test_every_pooling_and_dense_variant_exports_with_torch_embeddings(tmp_path, pooling, dense):
    torch.set_num_threads(1)
    exp = make_tiny_exp(tmp_path / "exp", pooling=pooling, dense_variant=dense)
    written = export_onnx(exp)
    assert written == [exp / "onnx" / "model.onnx"]
    model = OnnxSpeakerModel(written[0], num_threads=1, batch_frames=100000)
    rng = np.random.default_rng(1)
    feats = [(rng.normal(8, 2, size=(t, 80))).astype(np.float32) for t in LENGTHS]
    got = model.embed_features(feats)           # one padded batch of 10 (traced with 2)
    ref = _torch_embeddings(exp, feats)
    assert cosine_rows(got, ref).min() >= 0.99999
    scale = float(np.abs(ref).max())  # float32 rounding differs between the two runtimes' kernels
    np.testing.assert_allclose(got, ref, atol=5e-5 * scale, rtol=0)
    alone = np.stack([model.embed_features([f])[0] for f in feats])
    np.testing.assert_allclose(got, alone, atol=5e-5 * scale, rtol=0)


def test_metadata_carries_the_runtime_settings(exported):
    _, exp = exported
    model = OnnxSpeakerModel(exp / "onnx" / "model.onnx")
    assert model.features_config == FbankConfig()
    assert model.embed_dim == 400 and model.threshold == 0.25 and model.quantized == "none"
    assert model.metadata[meta.CHECKPOINT] == "best.pt" and model.metadata[meta.MODEL_STEP] == "7"


def test_model_option_exports_those_weights(tmp_path):
    torch.set_num_threads(1)
    exp = make_tiny_exp(tmp_path / "exp", seed=0)
    other = make_tiny_exp(tmp_path / "other", seed=3)
    shutil.copy(other / "best.pt", exp / "avg_last2.pt")  # other weights for the same config, as an average
    export_onnx(exp, model_file="avg_last2.pt")
    feats = [np.random.default_rng(2).normal(8, 2, size=(90, 80)).astype(np.float32)]
    got = OnnxSpeakerModel(exp / "onnx" / "model.onnx").embed_features(feats)
    assert cosine_rows(got, _torch_embeddings(other, feats)).min() >= 0.99999
    assert cosine_rows(got, _torch_embeddings(exp, feats)).min() < 0.999
    # the threshold of best.pt does not belong to other weights
    assert OnnxSpeakerModel(exp / "onnx" / "model.onnx").threshold is None


def _blocked_env(tmp_path: Path) -> dict:
    stub = tmp_path / "no_torch" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("torch is blocked in this test")\n')
    return {"PYTHONPATH": f"{stub.parent}:{REPO}"}


def test_embed_and_verify_run_without_torch(exported, tmp_path):
    root, exp = exported
    data = make_wav_data_dir(tmp_path / "wavs", n_spk=2, n_utt=2, lengths=(0.5, 1.5))
    wavs = sorted((data / "wav").glob("*.wav"))
    env = _blocked_env(tmp_path)
    probe = run_script([sys.executable, "-c", "import torch"], env=env, check=False)
    assert "torch is blocked" in probe.stderr
    onnx = exp / "onnx" / "model.onnx"
    run_script([sys.executable, "-m", "dmha.bin.embed", "--onnx", str(onnx), "--format", "npy",
                "-o", str(tmp_path / "out"), *map(str, wavs)], env=env)
    import dmha

    torch_model = dmha.load_model(exp, "cpu")
    embs = {}
    for w in wavs:
        embs[w.stem] = np.load(tmp_path / "out" / f"{w.stem}.npy")
        ref = torch_model.embed(str(w))
        assert cosine_rows(embs[w.stem][None], ref[None])[0] >= 0.9999
    out = run_script([sys.executable, "-m", "dmha.bin.verify", "--onnx", str(onnx), str(wavs[0]),
                      str(wavs[1])], env=env).stdout.split()
    score = float(out[0])
    assert score == pytest.approx(float(cosine_rows(embs[wavs[0].stem][None], embs[wavs[1].stem][None])[0]),
                                  abs=1e-4)
    assert out[1] == ("same" if score >= 0.25 else "different") and "0.2500" in " ".join(out)
    # two enrolment recordings and a test one, still without torch: the model is their mean unit embedding
    out = run_script([sys.executable, "-m", "dmha.bin.verify", "--onnx", str(onnx), *map(str, wavs[:3])],
                     env=env).stdout
    units = np.stack([embs[w.stem] / np.linalg.norm(embs[w.stem]) for w in wavs[:2]])
    want = float(cosine_rows(units.mean(0)[None], embs[wavs[2].stem][None])[0])
    assert float(out.split()[0]) == pytest.approx(want, abs=1e-4) and "one model of 2 enrolment" in out


def test_exported_calibration_decides_as_the_torch_model(tmp_path):
    """dmha-verify --onnx and --exp decide a trial by the same rule: the exp's calibration goes into the
    model (it used to compare the score with the exported threshold although the exp was calibrated)."""
    import dmha
    from dmha.scoring.calibration import Calibration, write_calibration_file

    exp = make_tiny_exp(tmp_path / "exp")
    (exp / "threshold.yaml").write_text("threshold: 0.25\nmodel_step: 7\n")
    info = {"model_step": 7, "model_file": "best.pt", "norm": "none"}
    write_calibration_file(exp / "calibration.yaml", Calibration(10.0, -2.0, info))
    export_onnx(exp)
    data = make_wav_data_dir(tmp_path / "wavs", n_spk=2, n_utt=1, lengths=(0.5, 1.5))
    a, b = map(str, sorted((data / "wav").glob("*.wav")))
    want = dmha.load_model(exp, "cpu").verify(a, b, p_target=0.5)
    onnx = exp / "onnx" / "model.onnx"
    got = OnnxSpeakerModel(onnx).verify(a, b, p_target=0.5)
    assert got.basis == want.basis == "llr" and got.same == want.same and got.threshold == 0.0
    assert got.llr == pytest.approx(want.llr, abs=1e-3)
    out = run_script([sys.executable, "-m", "dmha.bin.verify", "--onnx", str(onnx), "--p-target", "0.5",
                      a, b], env=_blocked_env(tmp_path)).stdout
    assert out.split()[1] == ("same" if want.same else "different") and "exported calibration" in out
    assert float(out.split("LLR ")[1].split()[0]) == pytest.approx(want.llr, abs=2e-3)
    # a calibration of S-normalised scores is not used (no cohort at run time): neither by load_model nor
    # exported; the threshold rules
    write_calibration_file(exp / "calibration.yaml", Calibration(10.0, -2.0, {**info, "norm": "snorm"}))
    export_onnx(exp)
    m = OnnxSpeakerModel(onnx)
    assert m.calibration is None and m.verify(a, b).basis == "cosine" and m.verify(a, b).threshold == 0.25
    assert dmha.load_model(exp, "cpu").calibration is None
    with pytest.raises(UserError, match="no calibration in the model"):
        m.llr(a, b)


def test_extract_backend_onnx_writes_the_torch_ark(exported, tmp_path):
    _, exp = exported
    data = make_feats_data_dir(tmp_path / "data", LENGTHS)
    out = {}
    for backend in ("torch", "onnx"):
        emb = tmp_path / backend
        run_script(["steps/extract_embeddings.sh", "--nj", "2", "--backend", backend, str(exp), str(data),
                    str(emb)])
        out[backend] = {name: {k: np.array(v) for k, v in kaldiio.load_scp(str(emb / f"{name}.scp")).items()}
                        for name in ("xvector", "spk_xvector")}
    for name in ("xvector", "spk_xvector"):
        t, o = out["torch"][name], out["onnx"][name]
        assert list(t) == list(o) and len(t) == (len(LENGTHS) if name == "xvector" else 4)
        t_mat, o_mat = np.stack(list(t.values())), np.stack(list(o.values()))
        assert cosine_rows(o_mat, t_mat).min() >= 0.99999
        norms = np.linalg.norm(t_mat, axis=1, keepdims=True)
        np.testing.assert_allclose(o_mat / norms, t_mat / norms, atol=1e-4, rtol=0)
    # a re-run with the same model skips; the torch outputs' stamp is not the onnx one
    again = run_script(["steps/extract_embeddings.sh", "--backend", "onnx", str(exp), str(data),
                        str(tmp_path / "onnx")])
    assert "up to date" in again.stdout


def test_features_of_another_setting_are_refused(exported, tmp_path):
    _, exp = exported
    data = make_feats_data_dir(tmp_path / "data", [50, 60, 70])
    (data / "fbank.yaml").write_text(json.dumps({**FbankConfig(hop_length=80).to_dict()}))
    proc = run_script(["steps/extract_embeddings.sh", "--backend", "onnx", str(exp), str(data),
                       str(tmp_path / "emb")], check=False)
    assert proc.returncode != 0
    err = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(err) == 1 and "hop_length=80 (expected 160)" in err[0] and "fbank.yaml" in err[0]
    assert not (tmp_path / "emb" / "xvector.scp").exists()


def test_bad_model_files_give_one_line(exported, tmp_path):
    _, exp = exported
    with pytest.raises(UserError, match="ONNX model not found"):
        OnnxSpeakerModel(tmp_path / "missing.onnx")
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes((exp / "onnx" / "model.onnx").read_bytes()[:500])
    with pytest.raises(UserError, match="corrupt.onnx: not a usable ONNX model"):
        OnnxSpeakerModel(bad)
    import onnx

    foreign = onnx.load(str(exp / "onnx" / "model.onnx"))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(UserError, match="no dmha settings"):
        OnnxSpeakerModel(tmp_path / "foreign.onnx")
    proc = run_script([sys.executable, "-m", "dmha.bin.embed", "--onnx", str(bad), "-o", str(tmp_path / "o"),
                       "x.wav"], check=False)
    assert proc.returncode == 1 and proc.stderr.count("ERROR") == 1 and "Traceback" not in proc.stderr


def test_audio_at_another_rate_is_refused(exported, tmp_path):
    _, exp = exported
    wav = tmp_path / "a8k.wav"
    sf.write(wav, synth_wave(np.random.default_rng(0), 1.0, 8000, 120.0), 8000, subtype="PCM_16")
    model = OnnxSpeakerModel(exp / "onnx" / "model.onnx")
    with pytest.raises(UserError, match="a8k.wav: audio at 8000 Hz, the model expects 16000 Hz"):
        model.embed(str(wav))


def test_failed_export_writes_nothing(tmp_path, monkeypatch):
    exp = make_tiny_exp(tmp_path / "exp")
    with pytest.raises(UserError, match="opset >= 14"):
        export_onnx(exp, opset=11)

    def broken(*_a, **_k):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(UserError) as e:
        export_onnx(exp)
    assert ("cannot export to ONNX opset 17: RuntimeError: Unsupported: ONNX export of operator foo"
            in str(e.value))
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in exp.iterdir()) == ["best.pt", "config.yaml", "spk2int"]


def test_int8_export_needs_calibration_and_stays_close(tmp_path):
    torch.set_num_threads(1)
    exp = make_tiny_exp(tmp_path / "exp")
    with pytest.raises(UserError, match="--calib-data"):
        export_onnx(exp, quantize="int8")
    assert not (exp / "onnx").exists()
    data = make_feats_data_dir(tmp_path / "data", LENGTHS)
    written = export_onnx(exp, quantize="int8", calib_data=data)
    assert [p.name for p in written] == ["model.onnx", "model.int8.onnx"]
    q = OnnxSpeakerModel(written[1])
    assert q.quantized == "int8"
    feats = [np.array(v) for _, v in sorted(kaldiio.load_scp(str(data / "feats.scp")).items())]
    cos = cosine_rows(q.embed_features(feats), OnnxSpeakerModel(written[0]).embed_features(feats))
    # a 4-channel random CNN is the worst case for 8-bit activations; real models: bench/bench_onnx.py
    assert cos.min() > 0.8 and cos.max() < 1 - 1e-6


def test_extraction_uses_the_experiment_file_names():
    from dmha.bin import extract_embeddings
    from dmha.experiment import BEST_MODEL, CONFIG

    assert (extract_embeddings.BEST_MODEL, extract_embeddings.CONFIG) == (BEST_MODEL, CONFIG)


def test_export_cli_help_names_its_options():
    shell = run_script(["steps/export_onnx.sh", "--help"]).stdout
    assert "--quantize none|int8" in shell and "--calib-data" in shell and "--model NAME" in shell
    assert "--winograd auto|off|all" in shell
    module = run_script([sys.executable, "-m", "dmha.bin.export_onnx", "--help"]).stdout
    assert "--opset" in module and "--calib-data" in module and "--winograd {auto,off,all}" in module
