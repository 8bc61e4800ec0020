"""The constants of the log-mel front-end (window, mel matrix) and its numpy twin, without torch.

Why a module of its own: :func:`dmha.features.fbank.compute_fbank` (torch, training and stage 1) and the
ONNX runtime (:mod:`dmha.export.runtime`, which must run without torch) have to compute the same
features. Both build their window and mel matrix here, from the same :class:`FbankConfig`, so the
settings and constants exist once; :func:`logmel_numpy` is the numpy form of the few array steps
(pre-emphasis, framing, |rfft|, mel, log) and a test holds it equal to ``compute_fbank``
(tests/test_onnx.py). See :mod:`dmha.features.fbank` for the recipe and why each step is as it is.
"""

from __future__ import annotations

import numpy as np

from dmha.common.errors import UserError
from dmha.features.config import FbankConfig


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = f / f_sp
    high = f >= min_log_hz
    mel[high] = min_log_mel + np.log(f[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    f = f_sp * m
    high = m >= min_log_mel
    f[high] = min_log_hz * np.exp(logstep * (m[high] - min_log_mel))
    return f


def mel_filterbank(cfg: FbankConfig) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft//2 + 1)``, Slaney scale, peak 1 (no area normalisation)."""
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_bins)
    mel_pts = np.linspace(_hz_to_mel_slaney(np.array([cfg.fmin]))[0],
                          _hz_to_mel_slaney(np.array([cfg.top_freq]))[0], cfg.n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def hamming_periodic(n: int) -> np.ndarray:
    """Periodic Hamming window (``np.hamming(n + 1)[:-1]``; scipy/librosa ``fftbins=True``)."""
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / n)


def scaled_window(cfg: FbankConfig) -> np.ndarray:
    """The analysis window times 32768: the int16 scaling of the samples is folded into it (exact: a
    power of two commutes with pre-emphasis and framing in floating point)."""
    return hamming_periodic(cfg.win_length) * 32768.0


def logmel_numpy(wave: np.ndarray, cfg: FbankConfig | None = None) -> np.ndarray:
    """Raw log-mel features ``(T, n_mels)`` float32 of a mono waveform in [-1, 1] at ``cfg.sample_rate``:
    the numpy form of :func:`dmha.features.fbank.compute_fbank` (same steps, same constants).

    Computed in float64 and rounded once at the end, so it differs from the float32 torch path only by
    that path's rounding. A signal shorter than one frame is a :class:`UserError`.
    """
    cfg = cfg or FbankConfig()
    x = np.asarray(wave)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"logmel_numpy expects a 1-D float waveform in [-1, 1], got {x.dtype} {x.shape}")
    x = x.astype(np.float64)
    n_frames = cfg.num_frames(x.shape[0])
    if n_frames == 0:
        raise UserError(f"audio of {x.shape[0]} samples is shorter than one frame ({cfg.n_fft} samples)")
    c = cfg.preemphasis
    y = np.empty_like(x)
    y[0] = x[0] * (1.0 - c)
    y[1:] = x[1:] - c * x[:-1]
    # Frame only the non-zero window span; rfft(n=n_fft) zero-pads it (a circular shift: |X| unchanged).
    left = (cfg.n_fft - cfg.win_length) // 2
    span = (n_frames - 1) * cfg.hop_length + cfg.win_length
    frames = np.lib.stride_tricks.sliding_window_view(y[left:left + span], cfg.win_length)[::cfg.hop_length]
    spec = np.abs(np.fft.rfft(frames * scaled_window(cfg), n=cfg.n_fft, axis=-1))
    mel = spec @ mel_filterbank(cfg).T
    return np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32)
