"""Import the list files of the paper's reference code into Kaldi data dirs and trials.

The reference implementation trains from a **label file** (``<path> <label> <anything>`` per line, e.g.
``id00012/21Uxsk56VDQ/00001 0 -1``; paths relative to its ``--train_data_dir``, with or without the
``.wav`` extension; labels 0..N-1) and validates on two **pair files**: clients (same-speaker pairs)
and impostors (different-speaker pairs), ``<path> <path>`` per line. Importing them lets our recipe
train and validate on exactly the reference's lists.

Conventions of the import:

* Speaker ids are ``spk<label>``, zero-padded to the width of the largest label (``spk0000`` ..
  ``spk5993``), so that stage 2's sorted speaker map gives every speaker the reference's class index.
* An utterance id is ``<spk>-<key>``: the key is the path without its extension, relative to the
  common folder of all paths of the file(s), with ``/`` replaced by ``-``
  (``spk0000-id00012-21Uxsk56VDQ-00001``).
* wav.scp: ``<audio-dir>/<path>``, ``.wav`` appended when the path has no extension; ``.m4a`` files
  are decoded through an ffmpeg pipe. Audio files that do not exist are counted and reported (stage 1
  would drop them); if none exists, ``--audio-dir`` is wrong and the import fails.
* The pair files carry no speaker labels. Validation speakers are therefore the connected components
  of the client pairs (``vspk0001`` ...; a speaker whose utterances no client pair links becomes several
  pseudo-speakers, which changes nothing for the trials). An impostor pair inside one component
  contradicts the client list and is an error naming the line. Trials: clients ``target``, then
  impostors ``nontarget``, in file order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, write_kv
from dmha.corpus.voxceleb import ffmpeg_pipe
from dmha.data.datadir import utt2spk_to_spk2utt, validate_data_dir
from dmha.data.trials import Trials, write_trials

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    path: str        # as written in the list
    line: str        # "file:lineno" for messages


def _canonical(path: str) -> str:
    """The list path with its extension (``.wav`` when it has none): ``x`` and ``x.wav`` are one file."""
    return path if os.path.splitext(path)[1] else path + ".wav"


def _strip_ext(path: str) -> str:
    base, ext = os.path.splitext(path)
    return base if ext.lower() in (".wav", ".m4a", ".flac") else path


def _keys(paths: Sequence[str]) -> dict[str, str]:
    """path -> key: extension dropped, relative to the common folder, '/' -> '-'."""
    stems = {p: _strip_ext(p.strip()) for p in paths}
    parents = {os.path.dirname(s) for s in stems.values()}
    common = ""
    if all(parents) and len({os.path.isabs(s) for s in stems.values()}) == 1:  # else no common folder
        common = os.path.commonpath(list(parents))
    out = {}
    for p, s in stems.items():
        rel = os.path.relpath(s, common) if common else s
        key = rel.strip("/").replace("/", "-").replace(" ", "_")
        if not key or key.startswith("."):
            raise UserError(f"cannot make an utterance id from path {p!r}")
        out[p] = key
    return out


def _audio_entry(path: str, audio_dir: PathLike | None) -> tuple[str, Path]:
    """(wav.scp entry, audio file) of a list path."""
    full = Path(audio_dir) / path if audio_dir is not None else Path(path)
    entry = ffmpeg_pipe(full) if full.suffix.lower() == ".m4a" else str(full)
    return entry, full


def _check_audio(files: Sequence[Path], what: str, audio_dir: PathLike | None) -> None:
    missing = [f for f in files if not f.is_file()]
    if not missing:
        return
    hint = f"--audio-dir {audio_dir}" if audio_dir is not None else "the paths (give --audio-dir?)"
    if len(missing) == len(files):
        raise UserError(f"{what}: none of the {len(files)} audio files exists (e.g. {missing[0]}); "
                        f"check {hint}")
    log.warning("%s: %d of %d audio files do not exist (e.g. %s); stage 1 will drop them",
                what, len(missing), len(files), ", ".join(str(m) for m in missing[:3]))


def _write_dir(dest: Path, utt2spk: dict[str, str], wav: dict[str, str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    order = sorted(utt2spk, key=lambda u: u.encode("utf-8"))
    write_kv(dest / "utt2spk", utt2spk)
    write_kv(dest / "wav.scp", wav)
    write_kv(dest / "spk2utt", utt2spk_to_spk2utt((u, utt2spk[u]) for u in order))
    for stale in ("feats.scp", "utt2num_frames", "bad_utts", "trials"):
        (dest / stale).unlink(missing_ok=True)


def _validate(dest: Path) -> None:
    problems = validate_data_dir(dest)
    if problems:
        raise UserError(f"{dest}: imported data dir is invalid: {problems[0]} ({len(problems)} problem(s))")


def import_train_labels(labels_file: PathLike, dest: PathLike, *, audio_dir: PathLike | None = None) -> int:
    """Write a data dir from a reference label file; return the number of speakers."""
    labels_file, dest = Path(labels_file), Path(dest)
    if not labels_file.is_file():
        raise UserError(f"{labels_file}: label file not found")
    rows: list[tuple[str, int, str]] = []
    with open(labels_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or not parts[1].isdigit():
                raise UserError(f"{labels_file}:{lineno}: expected '<path> <label 0..N-1> [-1]', "
                                f"got {line.strip()!r}")
            rows.append((_canonical(parts[0]), int(parts[1]), f"{labels_file}:{lineno}"))
    if not rows:
        raise UserError(f"{labels_file}: no entries")
    seen: dict[str, str] = {}
    for path, _, where in rows:
        if path in seen:
            raise UserError(f"{where}: path {path!r} already listed at {seen[path]}")
        seen[path] = where
    width = len(str(max(r[1] for r in rows)))
    keys = _keys([r[0] for r in rows])
    utt2spk: dict[str, str] = {}
    wav: dict[str, str] = {}
    files: list[Path] = []
    for path, label, where in rows:
        spk = f"spk{label:0{width}d}"
        utt = f"{spk}-{keys[path]}"
        if utt in utt2spk:
            raise UserError(f"{where}: path {path!r} gives utterance id {utt!r} twice (same path with "
                            "another extension?)")
        entry, full = _audio_entry(path, audio_dir)
        utt2spk[utt], wav[utt] = spk, entry
        files.append(full)
    labels = sorted({r[1] for r in rows})
    if labels[-1] != len(labels) - 1:
        log.warning("%s: labels are not 0..N-1 without gaps (%d labels, largest %d)", labels_file,
                    len(labels), labels[-1])
    _check_audio(files, str(labels_file), audio_dir)
    _write_dir(dest, utt2spk, wav)
    _validate(dest)
    log.info("%s: %d utterances of %d speakers from %s", dest, len(utt2spk), len(labels), labels_file)
    return len(labels)


def _read_pairs(path: Path) -> list[tuple[str, str, str]]:
    if not path.is_file():
        raise UserError(f"{path}: pair file not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UserError(f"{path}:{lineno}: expected '<path> <path>', got {line.strip()!r}")
            if _canonical(parts[0]) == _canonical(parts[1]):
                raise UserError(f"{path}:{lineno}: an utterance paired with itself")
            out.append((_canonical(parts[0]), _canonical(parts[1]), f"{path}:{lineno}"))
    if not out:
        raise UserError(f"{path}: no pairs")
    return out


def _components(nodes: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Union-find: node -> component index (components numbered by their first node in ``nodes``)."""
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    index: dict[str, int] = {}
    out = {}
    for n in nodes:
        out[n] = index.setdefault(find(n), len(index))
    return out


def import_validation_pairs(clients_file: PathLike, impostors_file: PathLike, dest: PathLike, *,
                            audio_dir: PathLike | None = None) -> Trials:
    """Write a validation data dir with ``trials`` from the reference's client and impostor pair files."""
    dest = Path(dest)
    clients = _read_pairs(Path(clients_file))
    impostors = _read_pairs(Path(impostors_file))
    paths = sorted({p for a, b, _ in clients + impostors for p in (a, b)})
    comp = _components(paths, clients)
    for a, b, where in impostors:
        if comp[a] == comp[b]:
            raise UserError(f"{where}: impostor pair {a} {b} joins utterances that the client pairs make "
                            "one speaker")
    width = len(str(max(comp.values()) + 1))
    spk_of = {p: f"vspk{comp[p] + 1:0{width}d}" for p in paths}
    keys = _keys(paths)
    utt = {p: f"{spk_of[p]}-{keys[p]}" for p in paths}
    if len(set(utt.values())) != len(paths):
        raise UserError(f"{clients_file}: two different paths give the same utterance id (one file with "
                        "two extensions?)")
    wav, files = {}, []
    for p in paths:
        entry, full = _audio_entry(p, audio_dir)
        wav[utt[p]] = entry
        files.append(full)
    _check_audio(files, f"{clients_file} + {impostors_file}", audio_dir)
    _write_dir(dest, {utt[p]: spk_of[p] for p in paths}, wav)
    pairs = clients + impostors
    trials = Trials([utt[a] for a, _, _ in pairs], [utt[b] for _, b, _ in pairs],
                    np.array([True] * len(clients) + [False] * len(impostors)))
    write_trials(dest / "trials", trials)
    _validate(dest)
    log.info("%s: %d utterances, %d trials (%d target) from %s and %s", dest, len(paths), len(trials),
             len(clients), clients_file, impostors_file)
    return trials
