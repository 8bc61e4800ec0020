"""The official VoxCeleb1 trial lists, converted to Kaldi trials with the recipe's utterance ids.

Official format, one trial per line: ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``
(1 = same speaker). Converted: ``id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target``.

**Test sets** (:data:`OFFICIAL_LISTS`). The paper's table uses 37,611 / 581,480 / 552,536 trials (SPEC §5):
that is the *cleaned* Vox1-O list (veri_test2.txt) but the *original* E and H lists (list_test_all.txt,
list_test_hard.txt; the cleaned ones have 579,818 and 550,894). So ``vox1_O``, ``vox1_E``, ``vox1_H`` are
exactly the paper's protocol, and the other three lists become ``vox1_O_orig``, ``vox1_E_clean``,
``vox1_H_clean`` for comparison with later work.

**Missing utterances** (a trial naming a file the user's tree lacks — a failed unzip, a partial
download): never dropped silently. The trials that can be scored are written, the dropped official lines
go to ``trials.missing`` beside them, and a warning gives the count and the first few utterances. If
more than ``max_missing_pct`` percent of a list's trials would be dropped, that is a wrong or incomplete
corpus rather than a few bad files, so preparation fails (``trials.missing`` is still written, the
``trials`` file is not) — comparing against the paper on a different list would be meaningless.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open
from dmha.corpus.voxceleb import utt_id_from_relpath
from dmha.data.trials import Trials, write_trials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfficialList:
    """One official trial list: the recipe's test-set name, its file name, its official trial count."""

    name: str
    filename: str
    n_trials: int
    about: str


#: Every official list, the paper's protocol first (see the module docstring).
OFFICIAL_LISTS: tuple[OfficialList, ...] = (
    OfficialList("vox1_O", "veri_test2.txt", 37_611, "Vox1-O, cleaned (the paper's)"),
    OfficialList("vox1_E", "list_test_all.txt", 581_480, "Vox1-E, original (the paper's)"),
    OfficialList("vox1_H", "list_test_hard.txt", 552_536, "Vox1-H, original (the paper's)"),
    OfficialList("vox1_O_orig", "veri_test.txt", 37_720, "Vox1-O, original"),
    OfficialList("vox1_E_clean", "list_test_all2.txt", 579_818, "Vox1-E, cleaned"),
    OfficialList("vox1_H_clean", "list_test_hard2.txt", 550_894, "Vox1-H, cleaned"),
)


@dataclass
class ConvertedList:
    """A converted list: the scorable trials and what had to be left out."""

    trials: Trials
    n_lines: int                                             # trials in the official file
    missing_lines: list[str] = field(default_factory=list)   # official lines left out
    missing_utts: list[str] = field(default_factory=list)    # their absent utterances (sorted, unique)

    @property
    def utts(self) -> set[str]:
        return set(self.trials.enroll) | set(self.trials.test)


def convert_official_list(path: PathLike, known_utts: Collection[str]) -> ConvertedList:
    """Read an official list; keep the trials whose two utterances are in ``known_utts``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: trial list not found")
    enroll: list[str] = []
    test: list[str] = []
    labels: list[bool] = []
    missing_lines: list[str] = []
    missing: set[str] = set()
    n = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise UserError(f"{path}:{lineno}: expected '1|0 <spk>/<video>/<nnnnn>.wav "
                                f"<spk>/<video>/<nnnnn>.wav', got {line.strip()!r}")
            try:
                e, t = utt_id_from_relpath(parts[1]), utt_id_from_relpath(parts[2])
            except ValueError as err:
                raise UserError(f"{path}:{lineno}: {err}") from None
            n += 1
            absent = [u for u in (e, t) if u not in known_utts]
            if absent:
                missing.update(absent)
                missing_lines.append(line.strip())
                continue
            enroll.append(e)
            test.append(t)
            labels.append(parts[0] == "1")
    if n == 0:
        raise UserError(f"{path}: no trials in the file")
    trials = Trials(enroll, test, np.asarray(labels, dtype=bool))
    return ConvertedList(trials, n, missing_lines, sorted(missing, key=lambda u: u.encode("utf-8")))


def missing_message(conv: ConvertedList, list_path: PathLike, out_dir: PathLike) -> str:
    """One line: how many trials and utterances are missing, the first few, where the full list is."""
    first = ", ".join(conv.missing_utts[:5]) + (" ..." if len(conv.missing_utts) > 5 else "")
    return (f"{list_path}: {len(conv.missing_lines)} of {conv.n_lines} trials name "
            f"{len(conv.missing_utts)} utterance(s) absent from the VoxCeleb1 tree ({first}); "
            f"those trials are listed in {Path(out_dir) / 'trials.missing'}")


def write_converted(conv: ConvertedList, list_path: PathLike, out_dir: PathLike, *,
                    max_missing_pct: float = 1.0) -> None:
    """Write ``<out_dir>/trials`` (and ``trials.missing`` when trials were left out) per the policy above."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing_file = out_dir / "trials.missing"
    if not conv.missing_lines:
        missing_file.unlink(missing_ok=True)
        write_trials(out_dir / "trials", conv.trials)
        return
    with atomic_open(missing_file) as f:
        f.writelines(line + "\n" for line in conv.missing_lines)
    msg = missing_message(conv, list_path, out_dir)
    pct = 100.0 * len(conv.missing_lines) / conv.n_lines
    if pct > max_missing_pct or not len(conv.trials):
        (out_dir / "trials").unlink(missing_ok=True)
        raise UserError(f"{msg}. That is {pct:.2f}% of the list (limit {max_missing_pct}%): is --vox1 "
                        "complete (dev and test)? Fix the tree, or raise --max-missing-pct to score the rest")
    log.warning("%s; scoring the other %d trials (%.3f%% left out)", msg, len(conv.trials), pct)
    write_trials(out_dir / "trials", conv.trials)
