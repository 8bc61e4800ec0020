"""Kaldi trial lists: ``enroll test target|nontarget`` per line.

The scoring stage, validation during training and the corpus builders all read and write trials
through this module so that there is one definition of the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open

_LABELS = {"target": True, "nontarget": False, "1": True, "0": False}


@dataclass
class Trials:
    """Parallel arrays of a trial list (``labels`` is None for an unlabelled list)."""

    enroll: list[str]
    test: list[str]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.enroll)


def read_trials(path: PathLike, *, require_labels: bool = True) -> Trials:
    """Read a trial list; lines are ``enroll test [target|nontarget]``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: trial list not found")
    enroll: list[str] = []
    test: list[str] = []
    labels: list[bool] = []
    n_labelled = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3):
                raise UserError(f"{path}:{lineno}: expected 'enroll test [target|nontarget]', got {line!r}")
            enroll.append(parts[0])
            test.append(parts[1])
            if len(parts) == 3:
                if parts[2] not in _LABELS:
                    raise UserError(f"{path}:{lineno}: label must be target or nontarget, got {parts[2]!r}")
                labels.append(_LABELS[parts[2]])
                n_labelled += 1
    if n_labelled not in (0, len(enroll)):
        raise UserError(f"{path}: some trials have a label and some do not; label all or none")
    if require_labels and (n_labelled == 0 or not enroll):
        raise UserError(f"{path}: trial list has no labelled trials (need 'enroll test target|nontarget')")
    return Trials(enroll, test, np.asarray(labels, dtype=bool) if n_labelled else None)


def read_score_file(path: PathLike) -> tuple[Trials, np.ndarray]:
    """Read a labelled score file of steps/score.sh (``enroll test score target|nontarget`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: score file not found; run steps/score.sh first")
    enroll: list[str] = []
    test: list[str] = []
    scores: list[float] = []
    labels: list[bool] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 4 or parts[3] not in _LABELS:
                raise UserError(f"{path}:{lineno}: expected 'enroll test score target|nontarget', "
                                f"got {line!r}")
            enroll.append(parts[0])
            test.append(parts[1])
            scores.append(float(parts[2]))
            labels.append(_LABELS[parts[3]])
    return Trials(enroll, test, np.asarray(labels, dtype=bool)), np.asarray(scores, dtype=np.float64)


def write_trials(path: PathLike, trials: Trials) -> None:
    """Atomically write a trial list in Kaldi format."""
    with atomic_open(path) as f:
        for i, (e, t) in enumerate(zip(trials.enroll, trials.test)):
            if trials.labels is None:
                f.write(f"{e} {t}\n")
            else:
                f.write(f"{e} {t} {'target' if trials.labels[i] else 'nontarget'}\n")


def _c_key(s: str) -> bytes:
    return s.encode("utf-8")


def make_trials(utt2spk: dict[str, str], nontarget_ratio: float = 10.0, *, min_trials: int = 0,
                max_trials: int | None = None, seed: int = 0) -> Trials:
    """Build a labelled trial list from ``utt2spk``: every same-speaker pair plus sampled impostor pairs.

    Why this shape: with few speakers, all target pairs are cheap and give the most stable EER; impostor
    pairs are sampled ``nontarget_ratio`` times as many (at least enough to reach ``min_trials`` in all),
    because all of them would swamp scoring. ``max_trials`` caps the list (validation during training),
    then target pairs are subsampled too, keeping the 1:ratio proportion. Each unordered pair appears
    once, never an utterance with itself; enroll < test (C-locale) in every trial, the list sorted by
    (enroll, test). Deterministic for a given ``seed``.
    """
    if nontarget_ratio < 0:
        raise ValueError("nontarget_ratio must be >= 0")
    utts = sorted(utt2spk, key=_c_key)
    n = len(utts)
    spk_names = sorted(set(utt2spk.values()), key=_c_key)
    if len(spk_names) < 2:
        raise UserError(f"cannot make trials: need utterances of at least 2 speakers, got {len(spk_names)}")
    spk_index = {s: i for i, s in enumerate(spk_names)}
    spk = np.array([spk_index[utt2spk[u]] for u in utts], dtype=np.int64)
    rng = np.random.default_rng(seed)

    # All target pairs (i < j, same speaker), then the optional cap.
    ti: list[np.ndarray] = []
    tj: list[np.ndarray] = []
    for s in range(len(spk_names)):
        idx = np.flatnonzero(spk == s)
        a, b = np.triu_indices(len(idx), k=1)
        ti.append(idx[a])
        tj.append(idx[b])
    tgt_i = np.concatenate(ti)
    tgt_j = np.concatenate(tj)
    n_tgt = len(tgt_i)
    if max_trials is not None and n_tgt * (1.0 + nontarget_ratio) > max_trials:
        keep = max(1, int(max_trials // (1.0 + nontarget_ratio))) if n_tgt else 0
        sel = np.sort(rng.choice(n_tgt, size=min(keep, n_tgt), replace=False))
        tgt_i, tgt_j, n_tgt = tgt_i[sel], tgt_j[sel], len(sel)

    n_pairs = n * (n - 1) // 2
    counts = np.bincount(spk)
    n_nontgt_avail = n_pairs - int((counts * (counts - 1) // 2).sum())
    n_non = max(int(round(nontarget_ratio * n_tgt)), min_trials - n_tgt)
    if max_trials is not None:
        n_non = min(n_non, max_trials - n_tgt)
    n_non = max(0, min(n_non, n_nontgt_avail))
    non_i, non_j = _sample_nontarget_pairs(spk, n_non, n_nontgt_avail, rng)

    enroll_idx = np.concatenate([tgt_i, non_i])
    test_idx = np.concatenate([tgt_j, non_j])
    labels = np.concatenate([np.ones(n_tgt, dtype=bool), np.zeros(len(non_i), dtype=bool)])
    order = np.lexsort((test_idx, enroll_idx))  # utts are C-sorted, so index order is C order
    return Trials([utts[k] for k in enroll_idx[order]], [utts[k] for k in test_idx[order]], labels[order])


def _sample_nontarget_pairs(spk: np.ndarray, k: int, n_avail: int,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct pairs (i < j) of utterances of different speakers, uniformly without replacement."""
    n = len(spk)
    empty = np.zeros(0, dtype=np.int64)
    if k <= 0:
        return empty, empty
    if k > 0.3 * n_avail and n_avail <= 50_000_000:
        # Dense: enumerate every impostor pair and choose among them.
        i, j = np.triu_indices(n, k=1)
        diff = spk[i] != spk[j]
        i, j = i[diff], j[diff]
        sel = np.sort(rng.choice(len(i), size=k, replace=False))
        return i[sel].astype(np.int64), j[sel].astype(np.int64)
    # Sparse: draw random pairs, drop same-speaker and repeated pairs, until there are k.
    codes = np.zeros(0, dtype=np.int64)
    while len(codes) < k:
        m = 2 * (k - len(codes)) + 16
        a = rng.integers(0, n, size=m)
        b = rng.integers(0, n, size=m)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        ok = (lo != hi) & (spk[lo] != spk[hi])
        new = np.concatenate([codes, lo[ok] * n + hi[ok]])
        _, first = np.unique(new, return_index=True)
        codes = new[np.sort(first)]  # keep first occurrences in draw order: deterministic
    codes = codes[:k]
    return codes // n, codes % n
