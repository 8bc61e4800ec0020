"""dmha.features.fbank: numerical parity with the librosa reference pipeline (SPEC §1), batching, CMN/CMVN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmha.common.errors import UserError
from dmha.features.fbank import FbankConfig, compute_fbank, mel_filterbank, normalize_features

librosa = pytest.importorskip("librosa")

SR = 16000


def librosa_reference(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The paper's features computed with librosa, exactly as SPEC §1 writes them down."""
    z = x.astype(dtype) * 32768.0
    y = np.concatenate([z[:1] * (1 - 0.97), z[1:] - 0.97 * z[:-1]])
    mag = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, window="hamming", center=False))
    mel = librosa.feature.melspectrogram(S=mag, sr=SR, n_mels=80, fmin=0, fmax=SR / 2, norm=None, htk=False,
                                         dtype=dtype)
    return np.log(np.maximum(1.0, mel)).T


def random_signal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, n)


def speech_like(n: int, seed: int) -> np.ndarray:
    """Harmonic tone with vibrato (f0 ~ 90-250 Hz), a slow amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    harmonics = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 40))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2
    x = 0.2 * env * harmonics + 0.003 * rng.standard_normal(n)
    return np.clip(x, -1, 1)


def assert_parity(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    # Log features: an absolute difference d is a relative error exp(d) - 1 of the mel energies.
    energy_rel = np.abs(np.expm1(ours.astype(np.float64) - ref))
    assert energy_rel.max() <= 1e-4, energy_rel.max()
    feat_rel = np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0)
    assert feat_rel.max() <= 1e-4, feat_rel.max()


def test_mel_filterbank_equals_librosa_slaney_without_norm():
    cfg = FbankConfig()
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=80, fmin=0, fmax=SR / 2, norm=None, htk=False,
                              dtype=np.float64)
    np.testing.assert_allclose(mel_filterbank(cfg), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [513, 1299, 16001, 24323, 48161])
@pytest.mark.parametrize("kind", ["random", "speech"])
def test_parity_with_librosa(n, kind):
    x = random_signal(n, n) if kind == "random" else speech_like(n, n)
    ref = librosa_reference(x)
    assert ref.shape[0] == 1 + (n - 512) // 160
    ours = compute_fbank(x.astype(np.float32)).numpy()
    assert ours.dtype == np.float32
    assert_parity(ours, ref)
    # ... and against librosa computed in float32, as a float32 reference implementation would run it.
    assert_parity(ours, librosa_reference(x.astype(np.float32), dtype=np.float32).astype(np.float64))


def test_speech_like_signal_is_not_trivially_floored():
    """The parity test must exercise the log, not compare two arrays of log(1) = 0."""
    feats = compute_fbank(speech_like(16001, 1).astype(np.float32)).numpy()
    assert (feats > 1.0).mean() > 0.9
    assert feats.std(axis=0).mean() > 0.1


@pytest.mark.parametrize("n", [512, 513, 671, 672, 673, 999, 16000])
def test_frame_count(n):
    cfg = FbankConfig()
    feats = compute_fbank(random_signal(n, 0).astype(np.float32), cfg)
    assert feats.shape == (1 + (n - 512) // 160, 80) == (cfg.num_frames(n), 80)


def test_integer_samples_are_refused():
    """int16 samples would silently be scaled twice; the contract is float in [-1, 1]."""
    with pytest.raises(ValueError, match="float samples"):
        compute_fbank(np.zeros(1000, dtype=np.int16))


def test_shorter_than_one_frame_is_a_user_error():
    with pytest.raises(UserError, match="shorter than one frame"):
        compute_fbank(np.zeros(511, dtype=np.float32))


def test_batched_equals_one_by_one():
    x = np.stack([speech_like(20011, s) for s in range(3)] + [random_signal(20011, 7)]).astype(np.float32)
    batched = compute_fbank(torch.from_numpy(x))
    assert batched.shape == (4, 1 + (20011 - 512) // 160, 80)
    for i in range(4):
        torch.testing.assert_close(batched[i], compute_fbank(x[i]), rtol=1e-6, atol=1e-6)


def test_long_signal_crossing_cpu_blocks_matches_librosa():
    """Signals longer than one CPU block (512 frames) are computed block-wise; no seam at the edges."""
    x = speech_like(16000 * 6 + 77, 3)
    assert_parity(compute_fbank(x.astype(np.float32)).numpy(), librosa_reference(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_gpu_equals_cpu():
    x = torch.from_numpy(speech_like(32011, 5).astype(np.float32))
    torch.testing.assert_close(compute_fbank(x, device="cuda").cpu(), compute_fbank(x), rtol=1e-4, atol=1e-4)


def test_config_from_dict_round_trip_and_unknown_key():
    cfg = FbankConfig.from_dict({"n_mels": 40, "norm": "cmvn"})
    assert cfg.n_mels == 40 and FbankConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="n_mel"):
        FbankConfig.from_dict({"n_mel": 40})
    with pytest.raises(UserError, match="norm"):
        FbankConfig(norm="mvn")


def test_config_changes_the_features():
    x = speech_like(16001, 2).astype(np.float32)
    assert compute_fbank(x, FbankConfig(n_mels=40)).shape[1] == 40
    ref = librosa_reference(x.astype(np.float64))
    assert np.abs(compute_fbank(x, FbankConfig(preemphasis=0.0)).numpy() - ref).max() > 0.1


# ----------------------------------------------------------------------------------------------- CMN

def test_cmn_zero_mean_per_bin_and_numpy_in_numpy_out():
    feats = compute_fbank(speech_like(16001, 4).astype(np.float32)).numpy()
    out = normalize_features(feats, "cmn")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(out, feats - feats.mean(0), atol=1e-5)
    assert normalize_features(feats, "none") is feats


def test_cmvn_unit_std_and_constant_bins_not_blown_up():
    rng = np.random.default_rng(0)
    feats = rng.normal(5, 3, (200, 6)).astype(np.float32)
    feats[:, 2] = 7.0  # a constant bin: std 0 < 0.01 -> divided by 1
    out = normalize_features(torch.from_numpy(feats), "cmvn")
    assert isinstance(out, torch.Tensor)
    std = out.std(0, unbiased=False).numpy()
    np.testing.assert_allclose(std[[0, 1, 3, 4, 5]], 1, atol=1e-4)
    assert np.all(out[:, 2].numpy() == 0)


@pytest.mark.parametrize("mode", ["cmn", "cmvn"])
def test_normalisation_uses_valid_frames_only(mode):
    rng = np.random.default_rng(1)
    lens = [50, 80, 30]
    padded = torch.full((3, 80, 5), 1e3)  # garbage in the padding must not leak into the statistics
    utts = []
    for i, n in enumerate(lens):
        u = torch.from_numpy(rng.normal(i, 2, (n, 5)).astype(np.float32))
        utts.append(u)
        padded[i, :n] = u
    out = normalize_features(padded, mode, lengths=torch.tensor(lens))
    for i, n in enumerate(lens):
        torch.testing.assert_close(out[i, :n], normalize_features(utts[i], mode), rtol=1e-5, atol=1e-5)
        assert torch.all(out[i, n:] == 0)


def test_unknown_normalisation_mode():
    with pytest.raises(UserError, match="cmn"):
        normalize_features(np.zeros((3, 2), np.float32), "mvn")
