"""Additive noise, simulated reverberation, telephone channels, speed change (numpy/scipy/soundfile only).

The one implementation of every signal effect in dmha: the mini corpus builder (stage 0) uses it to vary
its synthetic voices (synthetic voices are far more consistent from one utterance to the next than real
people), and the training-data augmentation (``steps/augment_data_dir.sh``,
``steps/perturb_data_dir_speed.sh``) uses it for the augmented copies of a training set.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

NOISE_KINDS = ("white", "pink", "brown", "babble")
#: Telephone codecs a copy can go through at 8 kHz: linear 16-bit (band limit only), G.711 mu-law and
#: A-law, GSM 06.10 full rate (what Asterisk's .gsm prompts and many PBX recordings are stored in).
CODECS = ("pcm", "ulaw", "alaw", "gsm")
TELEPHONE_RATE = 8000
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
    from scipy.signal import fftconvolve  # here: scipy.signal takes ~1 s to import, noise needs none

    y = fftconvolve(x, rir)[:len(x)]
    return (y * (rms(x) / rms(y))).astype(np.float32)


def telephone_band(x: np.ndarray, sr: int) -> np.ndarray:
    """300-3400 Hz band-pass (a telephone channel), 4th-order Butterworth."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def telephone_channel(x: np.ndarray, sr: int, codec: str) -> np.ndarray:
    """``x`` as heard through an 8 kHz telephone line with ``codec``, back at ``sr``, same length.

    Why: real telephone speech (the Asterisk prompts of real_test, SRE-style data) has nothing above
    4 kHz and carries codec distortion; a model that has only seen wideband speech loses a third of its
    mel bands' information at test time (mini_test band-limited to 8 kHz: EER 20.2% -> 28.1%). The
    signal is resampled to 8 kHz (polyphase, anti-aliased), encoded and decoded by libsndfile, and
    resampled back to ``sr``.
    """
    import io

    import soundfile as sf
    from scipy.signal import resample_poly

    if codec not in CODECS:
        raise ValueError(f"unknown telephone codec '{codec}' (one of {', '.join(CODECS)})")
    ratio = Fraction(TELEPHONE_RATE, sr)
    narrow = resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator)
    narrow = np.clip(narrow, -1.0, 32767 / 32768).astype(np.float32)
    if codec != "pcm":
        buf = io.BytesIO()
        sf.write(buf, narrow, TELEPHONE_RATE, format="WAV", subtype={"ulaw": "ULAW", "alaw": "ALAW",
                                                                     "gsm": "GSM610"}[codec])
        buf.seek(0)
        decoded, _ = sf.read(buf, dtype="float32")
        narrow = decoded[:len(narrow)]  # GSM pads to whole 20-ms frames
    y = resample_poly(narrow.astype(np.float64), ratio.denominator, ratio.numerator)[:len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return y.astype(np.float32)


def set_level(x: np.ndarray, rms_dbfs: float, peak: float = 0.95) -> np.ndarray:
    """Scale to ``rms_dbfs`` RMS (dB re full scale), then down if the peak would exceed ``peak``."""
    y = x * (10.0 ** (rms_dbfs / 20.0) / rms(x))
    m = float(np.max(np.abs(y))) if len(y) else 0.0
    if m > peak:
        y *= peak / m
    return y.astype(np.float32)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (Kaldi/sox ``speed``): pitch and tempo change together.

    The samples are resampled by 1/factor (polyphase, scipy's Kaiser-windowed filter) and read back at
    the original rate, so the length becomes ``len(x) / factor``: 0.9 gives a slower, lower-pitched voice.
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return x.astype(np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(1000)
    return resample_poly(x, ratio.denominator, ratio.numerator).astype(np.float32)


def align_rir(rir: np.ndarray) -> np.ndarray:
    """A measured/simulated RIR from a file: drop what precedes its strongest tap, peak scaled to 1.

    Kaldi's wav-reverberate also aligns on the peak, so the reverberant copy keeps the clean timing.
    """
    rir = np.asarray(rir, dtype=np.float64)
    if rir.ndim > 1:
        rir = rir[:, 0]
    peak = int(np.argmax(np.abs(rir)))
    out = rir[peak:]
    if out.size == 0 or out[0] == 0:
        raise ValueError("impulse response is all zeros")
    return (out / out[0]).astype(np.float32)


def rt60_schroeder(rir: np.ndarray, sr: int, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """Reverberation time of an impulse response by Schroeder backward integration (ISO 3382 T20).

    The energy decay curve EDC(t) = sum_{k >= t} h(k)^2 (in dB re its start) is fitted by a line between
    ``fit_db`` and extrapolated to -60 dB. Used to check that :func:`make_rir` builds the room asked for.
    """
    e = np.asarray(rir, dtype=np.float64) ** 2
    edc = np.cumsum(e[::-1])[::-1]
    edc_db = 10.0 * np.log10(edc / edc[0] + 1e-300)
    hi, lo = fit_db
    idx = np.flatnonzero((edc_db <= hi) & (edc_db >= lo))
    if len(idx) < 2:
        raise ValueError("impulse response too short for the decay fit")
    t = idx / float(sr)
    slope, _ = np.polyfit(t, edc_db[idx], 1)  # dB per second (negative)
    return float(-60.0 / slope)


def synthetic_music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS stand-in for music: notes of harmonic tones on a beat, 1-3 voices, decaying envelopes.

    Without a MUSAN copy the "music" copies still get what sets music apart from noise: sustained
    harmonic partials with onsets, a different interference than broadband noise or babble.
    """
    out = np.zeros(n, dtype=np.float64)
    beat = int(sr * 60.0 / rng.uniform(70.0, 160.0))
    for _ in range(int(rng.integers(1, 4))):
        pos = -int(rng.integers(0, beat))
        while pos < n:
            dur = beat * int(rng.integers(1, 5))
            f0 = 440.0 * 2.0 ** ((int(rng.integers(36, 84)) - 69) / 12.0)
            t = np.arange(dur) / sr
            env = np.exp(-t * rng.uniform(1.0, 8.0)) * np.minimum(1.0, t / 0.01)
            tone = np.zeros(dur)
            for k in range(1, int(rng.integers(2, 8)) + 1):
                if k * f0 < sr / 2:
                    tone += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
            a, b = max(pos, 0), min(pos + dur, n)
            if b > a:
                out[a:b] += (env * tone)[a - pos:b - pos]
            pos += dur
    if not np.any(out):
        out = rng.standard_normal(n)
    return (out / rms(out)).astype(np.float32)


def loop_to_length(x: np.ndarray, n: int, start: int) -> np.ndarray:
    """``n`` samples of ``x`` from ``start`` on, repeating ``x`` as often as needed (noise loops)."""
    if len(x) == 0:
        raise ValueError("empty signal")
    reps = int(np.ceil((start % len(x) + n) / len(x)))
    tiled = np.tile(x, reps) if reps > 1 else x
    s = start % len(x)
    return np.ascontiguousarray(tiled[s:s + n], dtype=np.float32)
