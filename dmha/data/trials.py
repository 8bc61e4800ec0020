"""Kaldi trial lists: ``enroll test target|nontarget`` per line.

The scoring stage, validation during training and the corpus builders all read and write trials
through this module so that there is one definition of the format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.errors import UserError
from dmha.fileio import PathLike, atomic_open

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


def write_trials(path: PathLike, trials: Trials) -> None:
    """Atomically write a trial list in Kaldi format."""
    with atomic_open(path) as f:
        for i, (e, t) in enumerate(zip(trials.enroll, trials.test)):
            if trials.labels is None:
                f.write(f"{e} {t}\n")
            else:
                f.write(f"{e} {t} {'target' if trials.labels[i] else 'nontarget'}\n")
