"""dmha.features.audio.load_audio: paths and pipes, and a clear AudioError for each kind of bad audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dmha.features.audio import AudioError, load_audio, resample


def tone(n: int, sr: int = 16000, f: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture
def wav16(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = tone(8000)
    p = tmp_path / "a.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    return p, sf.read(p, dtype="int16")[0]


def test_path_and_pipe_give_int16_over_32768(wav16):
    path, ints = wav16
    for entry in (str(path), f"cat {path} |", f"cat {path} | cat |"):
        x, sr = load_audio(entry)
        assert sr == 16000 and x.dtype == np.float32 and x.ndim == 1
        np.testing.assert_array_equal(x, ints.astype(np.float32) / 32768)


def test_stereo_is_mixed_down_and_noted(tmp_path):
    left, right = tone(4000), tone(4000, f=300.0)
    p = tmp_path / "st.wav"
    sf.write(p, np.stack([left, right], 1), 16000, subtype="FLOAT")
    notes: list[str] = []
    x, _ = load_audio(str(p), notes=notes)
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-7)
    assert notes == ["2 channels mixed down to mono"]


def test_other_rate_is_resampled_and_noted(tmp_path):
    p = tmp_path / "8k.wav"
    sf.write(p, tone(8000, sr=8000, f=200.0), 8000, subtype="FLOAT")
    notes: list[str] = []
    x, sr = load_audio(str(p), 16000, notes=notes)
    assert sr == 16000 and len(x) == 16000
    assert notes == ["resampled 8000 Hz -> 16000 Hz"]
    np.testing.assert_allclose(x[2000:-2000], tone(16000, f=200.0)[2000:-2000], atol=2e-3)
    x2, sr2 = load_audio(str(p))  # no target rate: native rate
    assert sr2 == 8000 and len(x2) == 8000


def test_resample_identity_and_ratio():
    x = tone(44100, sr=44100)
    assert resample(x, 16000, 16000) is x
    assert len(resample(x, 44100, 16000)) == 16000


@pytest.mark.parametrize("case,match", [
    ("missing", "file not found"),
    ("empty", "empty file"),
    ("corrupt", "cannot decode audio"),
    ("nan", "NaN/Inf"),
    ("inf", "NaN/Inf"),
    ("pipe_no_output", "pipe command failed"),
    ("pipe_fails_after_output", r"pipe command failed \(exit 3\)"),
    ("pipe_empty_output", "no output"),
    ("no_samples", "no samples"),
])
def test_bad_audio_raises_one_line_reason(tmp_path, wav16, case, match):
    path, _ = wav16
    p = tmp_path / f"{case}.wav"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "corrupt":
        p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 4)
    elif case in ("nan", "inf"):
        x = tone(4000)
        x[100] = np.nan if case == "nan" else np.inf
        sf.write(p, x, 16000, subtype="FLOAT")
    elif case == "no_samples":
        sf.write(p, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    entry = {
        "pipe_no_output": f"cat {tmp_path}/nope.wav |",
        "pipe_fails_after_output": f"cat {path}; exit 3 |",
        "pipe_empty_output": "true |",
    }.get(case, str(p))
    with pytest.raises(AudioError, match=match) as e:
        load_audio(entry)
    assert "\n" not in str(e.value)
