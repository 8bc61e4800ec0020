"""Additive noise and simulated reverberation (numpy/scipy only, no data download).

Synthetic voices are far more consistent from one utterance to the next than real people; noise at
5-20 dB SNR, room reverberation and a telephone band on a part of the utterances make verification of
the mini corpus non-trivial and closer to real recordings.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

NOISE_KINDS = ("white", "pink", "brown", "babble")
_EPS = 1e-12


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + _EPS))


def coloured_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples with a 1/f^alpha power spectrum (white 0, pink 1, brown 2)."""
    alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-alpha / 2.0)
    spec[0] = 0.0  # no DC offset
    x = np.fft.irfft(spec, n=n)
    return (x / rms(x)).astype(np.float32)


def babble(n: int, sources: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS babble: the sum of random excerpts of ``sources`` (other speakers), each at unit RMS."""
    if not sources:
        raise ValueError("babble needs at least one source signal")
    out = np.zeros(n, dtype=np.float64)
    for src in sources:
        if len(src) == 0:
            continue
        reps = int(np.ceil((n + len(src)) / len(src)))
        tiled = np.tile(src, reps)
        start = int(rng.integers(0, len(src)))
        seg = tiled[start:start + n]
        out += seg / rms(seg)
    return (out / rms(out)).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` (same length) scaled so that 10*log10(P_speech / P_noise) equals ``snr_db``."""
    if len(noise) != len(speech):
        raise ValueError("speech and noise must have the same length")
    gain = rms(speech) / (rms(noise) * 10.0 ** (snr_db / 20.0))
    return (speech + gain * noise).astype(np.float32)


def make_rir(sr: int, rt60: float, rng: np.random.Generator, *, drr_db: float = 3.0,
             n_early: int = 6) -> np.ndarray:
    """A simulated room impulse response: direct path, sparse early reflections, exponential tail.

    The late tail is Gaussian noise under an envelope that decays by 60 dB in ``rt60`` seconds, starting
    2.5 ms after the direct path; its energy is set ``drr_db`` below the direct path's (direct-to-
    reverberant ratio). Early reflections fall 3-40 ms after the direct sound. Direct path at index 0
    with amplitude 1, so convolving keeps the speech aligned.
    """
    length = int(sr * min(1.5 * rt60, 1.5)) + 1
    t = np.arange(length) / sr
    env = np.exp(-3.0 * np.log(10.0) * t / rt60)  # amplitude: -60 dB at t = rt60
    onset = int(0.0025 * sr)
    tail = rng.standard_normal(length) * env
    tail[:onset] = 0.0
    for _ in range(n_early):
        k = int(rng.integers(int(0.003 * sr), int(0.04 * sr)))
        if k < length:
            tail[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) * env[k] * np.sqrt(sr * 0.01)
    e_tail = float(np.sum(tail ** 2)) + _EPS
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / e_tail)
    rir = tail
    rir[0] = 1.0
    return rir.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` (direct path at index 0), same length and RMS as the input."""
    y = fftconvolve(x, rir)[:len(x)]
    return (y * (rms(x) / rms(y))).astype(np.float32)


def telephone_band(x: np.ndarray, sr: int) -> np.ndarray:
    """300-3400 Hz band-pass (a telephone channel), 4th-order Butterworth."""
    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def set_level(x: np.ndarray, rms_dbfs: float, peak: float = 0.95) -> np.ndarray:
    """Scale to ``rms_dbfs`` RMS (dB re full scale), then down if the peak would exceed ``peak``."""
    y = x * (10.0 ** (rms_dbfs / 20.0) / rms(x))
    m = float(np.max(np.abs(y))) if len(y) else 0.0
    if m > peak:
        y *= peak / m
    return y.astype(np.float32)
