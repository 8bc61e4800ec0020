"""The real-voice part of mini corpus version 5: recorded human speech for training, validation, test.

The clips of :mod:`dmha.corpus.real_sources` are grouped by checked speaker id
(:data:`real_sources.LABEL_MAP`), split by seed into train / validation / test speakers (disjoint),
cut into pieces of ``min_dur``-``max_dur`` s (a long clip gives several consecutive pieces, a short
one is left out), at most ``max_utts`` pieces per speaker (a seeded choice), and written as 16 kHz
wavs. Every choice is seeded by (seed, speaker), so the output does not depend on ``nj``.
The clips are used as recorded (no augmentation): they already vary in room, microphone and level.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.corpus.real_sources import LABEL_MAP, Clip, read_clip
from dmha.corpus.synth import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealConfig:
    """How the real clips are cut and how many a speaker keeps (the defaults are the recipe's)."""

    min_dur: float = 1.5
    max_dur: float = 8.0
    max_utts: int = 100          # pieces per speaker
    min_utts: int = 10           # a speaker with fewer usable pieces is left out
    n_val: int = 6
    n_test: int = 8


def group_speakers(clips: list[Clip],
                   label_map: dict[str, str | None] | None = None) -> dict[str, list[Clip]]:
    """Speaker id -> clips (sorted by path). Raw labels mapped to None, or absent from the map, are left out.

    Only labels somebody checked may enter the corpus: an unknown raw label (a new package version
    with a new folder) is left out rather than guessed.
    """
    label_map = LABEL_MAP if label_map is None else label_map
    out: dict[str, list[Clip]] = {}
    for c in clips:
        spk = label_map.get(c.raw_label)
        if spk:
            out.setdefault(spk, []).append(c)
    return {s: sorted(v, key=lambda c: c.key) for s, v in sorted(out.items())}


def speaker_rng(seed: int, spk: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(spk.encode()), stream, 5])


def cut_pieces(wave: np.ndarray, min_dur: float, max_dur: float, sr: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Consecutive pieces of at most ``max_dur`` s; pieces shorter than ``min_dur`` are dropped.

    A clip of 18 s with max 8 s gives 8 + 8 + 2 s; a 1 s clip gives nothing at min 1.5 s.
    The lengths are balanced (18 s -> 3 x 6 s) so that no tail piece is wasted when it could be kept.
    """
    n, hi, lo = len(wave), int(max_dur * sr), int(min_dur * sr)
    if n < lo:
        return []
    k = -(-n // hi)  # pieces needed so that none is longer than max_dur
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [wave[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= lo]


def split_real_speakers(speakers: list[str], seed: int, n_val: int, n_test: int) -> dict[str, list[str]]:
    """Seeded, speaker-disjoint split; val and test take 0 or >= 2 speakers and train keeps >= 1."""
    for name, n in (("n-real-val", n_val), ("n-real-test", n_test)):
        if n == 1 or n < 0:
            raise UserError(f"--{name} must be 0 or >= 2 (trials need two speakers), got {n}")
    if n_val + n_test >= len(speakers):
        raise UserError(f"{len(speakers)} real speakers cannot give {n_val} validation + {n_test} test "
                        "speakers and keep one for training; lower --n-real-val/--n-real-test")
    order = [speakers[i] for i in np.random.default_rng([seed, 77]).permutation(len(speakers))]
    return {"train": sorted(order[n_val + n_test:]), "val": sorted(order[:n_val]),
            "test": sorted(order[n_val:n_val + n_test])}


def estimate_sex(waves: list[np.ndarray], sr: int = SAMPLE_RATE, threshold_hz: float = 165.0) -> str:
    """'m' or 'f' from the median F0 of voiced frames (autocorrelation, 60-400 Hz): an estimate.

    Only spk2gender needs it (Kaldi data dir convention); nothing in training reads it. Unreliable for
    acted voices (Drascula's John, median F0 ~210 Hz, comes out 'f'): a table of known sexes would
    be better.
    """
    f0s = []
    frame = int(0.04 * sr)
    lag_lo, lag_hi = sr // 400, sr // 60
    for w in waves:
        for a in range(0, len(w) - frame, frame):
            x = w[a:a + frame].astype(np.float64)
            x = x - x.mean()
            e = float(np.dot(x, x))
            if e < 1e-4 * frame:
                continue
            ac = np.correlate(x, x, mode="full")[frame - 1:]
            lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
            if ac[lag] > 0.5 * ac[0]:
                f0s.append(sr / lag)
    if not f0s:
        return "m"
    return "m" if float(np.median(f0s)) < threshold_hz else "f"


def _speaker_pieces(args: tuple) -> tuple[list[tuple[str, str, float, str]], str]:
    """One speaker: decode its clips, cut, choose, write. Returns rows (uid, wav, dur, source) and sex."""
    share, spk, clips, seed, cfg, wav_dir, write_wav = args
    pieces: list[tuple[Clip, int, np.ndarray]] = []
    for c in clips:
        for k, p in enumerate(cut_pieces(read_clip(share, c), cfg.min_dur, cfg.max_dur)):
            pieces.append((c, k, p))
    if len(pieces) > cfg.max_utts:
        keep = np.sort(speaker_rng(seed, spk, 0).choice(len(pieces), size=cfg.max_utts, replace=False))
        pieces = [pieces[i] for i in keep]
    rows = []
    for i, (c, k, p) in enumerate(pieces, 1):
        uid = f"{spk}-{i:04d}"
        dest = wav_dir / spk / f"{uid}.wav"
        write_wav(dest, p)
        rows.append((uid, str(dest), len(p) / SAMPLE_RATE, f"{c.path}#{k}"))
    return rows, estimate_sex([p for _, _, p in pieces[:20]])


def build_real(share: Path, clips: list[Clip], seed: int, cfg: RealConfig, wav_dir: Path,
               write_wav: Callable, pool_map: Callable, nj: int,
               label_map: dict[str, str | None] | None = None) -> tuple[dict[str, list[str]], dict, dict]:
    """Decode and write every kept speaker; returns (split, rows per speaker, sex per speaker).

    Speakers with fewer than ``cfg.min_utts`` usable pieces are left out before the split.
    """
    groups = group_speakers(clips, label_map)
    if not groups:
        raise UserError(f"no labelled real-voice clips under {share}; were the packages fetched?")
    tasks = [(share, spk, cl, seed, cfg, wav_dir, write_wav) for spk, cl in groups.items()]
    results = pool_map(_speaker_pieces, tasks, nj, "real voices")
    rows = {t[1]: r[0] for t, r in zip(tasks, results) if len(r[0]) >= cfg.min_utts}
    sexes = {t[1]: r[1] for t, r in zip(tasks, results) if t[1] in rows}
    for t, r in zip(tasks, results):
        if t[1] not in rows:
            log.warning("real speaker %s left out: %d pieces of %.1f-%.1f s (< %d)", t[1], len(r[0]),
                        cfg.min_dur, cfg.max_dur, cfg.min_utts)
    split = split_real_speakers(sorted(rows), seed, cfg.n_val, cfg.n_test)
    return split, rows, sexes
