"""The experiment results log: one human line and one machine-readable row per scoring run.

``<results>`` (e.g. ``exp/<name>/results``) gets lines such as
``mini_test none EER=3.45% minDCF0.01=0.3120 minDCF0.001=0.5000 (1800 trials)`` for people (with
``calibrated: Cllr=.. minCllr=.. actDCF0.01=.. actDCF0.001=..`` after it when the scores were calibrated), and
``<results>.tsv`` (tab-separated, header line, columns :data:`COLUMNS`) for programs: the summary reads
the TSV, keeping the latest row per (set, norm, backend), so re-scoring a set simply supersedes the old entry.
Both files are only ever replaced atomically, under a lock, so parallel scoring jobs cannot interleave.

Reference figures (e.g. the paper's) are NOT stored here: the summary takes them from a separate YAML
file (:func:`read_reference`) and shows them as extra columns, so the log stays a record of what ran.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open

COLUMNS = ("set", "norm", "eer", "mindcf_0.01", "mindcf_0.001", "n_trials", "n_target", "n_nontarget",
           "n_skipped", "score_file", "date",
           "min_cllr", "cllr", "actdcf_0.01", "actdcf_0.001", "calibration", "backend")
#: The columns of results files written by older dmha versions (before calibration metrics, before the
#: back-end column): still read, and extended (empty cells) when a row is appended.
LEGACY_HEADERS = (COLUMNS[:11], COLUMNS[:16])
#: Empty unless the scores were calibrated (steps/score.sh --calibration; min_cllr is always filled) or
#: scored through a back-end (``backend``: e.g. ``lda51``; empty = plain cosine).
OPTIONAL_COLUMNS = COLUMNS[11:]
_FLOAT_COLUMNS = ("eer", "mindcf_0.01", "mindcf_0.001", "min_cllr", "cllr", "actdcf_0.01", "actdcf_0.001")
_INT_COLUMNS = ("n_trials", "n_target", "n_nontarget", "n_skipped")


def tsv_path(results: PathLike) -> Path:
    """The machine-readable companion of a results file."""
    return Path(f"{results}.tsv")


def format_line(row: dict) -> str:
    """The human-readable results line of one scoring run."""
    backend = f" {row['backend']}" if row.get("backend") else ""
    line = (f"{row['set']} {row['norm']}{backend} EER={row['eer']:.2f}% minDCF0.01={row['mindcf_0.01']:.4f} "
            f"minDCF0.001={row['mindcf_0.001']:.4f} ({row['n_trials']} trials")
    if int(row.get("n_skipped", 0)):
        line += f", {row['n_skipped']} skipped: missing embeddings"
    line += ")"
    if row.get("cllr") is not None:
        line += (f" calibrated: Cllr={row['cllr']:.4f} minCllr={row['min_cllr']:.4f} "
                 f"actDCF0.01={row['actdcf_0.01']:.4f} actDCF0.001={row['actdcf_0.001']:.4f}")
    return line


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive lock on the results directory (flock on the directory itself: no lock file left)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_result(results: PathLike, row: dict) -> str:
    """Append ``row`` (keys :data:`COLUMNS`; ``date`` filled in if absent) to both files; return the line."""
    results = Path(results)
    row = dict(row)
    row.setdefault("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    row.setdefault("n_skipped", 0)
    for c in OPTIONAL_COLUMNS:
        row.setdefault(c, None)
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown result columns {sorted(unknown)}")
    for key, value in row.items():
        if any(c in str(value) for c in "\t\n"):
            raise UserError(f"result field {key}={value!r} contains a tab or newline")
    line = format_line(row)
    tsv = tsv_path(results)
    with _locked(results.parent):
        old_text = results.read_text(encoding="utf-8") if results.is_file() else ""
        old_tsv = tsv.read_text(encoding="utf-8") if tsv.is_file() else "\t".join(COLUMNS) + "\n"
        header = old_tsv.split("\n", 1)[0]
        legacy = [h for h in LEGACY_HEADERS if header == "\t".join(h)]
        if legacy:   # an older dmha's file: pad its rows with empty cells
            pad = "\t" * (len(COLUMNS) - len(legacy[0]))
            old_tsv = "".join(line + pad + "\n" if i else "\t".join(COLUMNS) + "\n"
                              for i, line in enumerate(old_tsv.rstrip("\n").split("\n")))
        elif header != "\t".join(COLUMNS):
            raise UserError(f"{tsv}: unexpected header; move the old file away")
        cells = []
        for c in COLUMNS:
            v = row[c]
            if v is None:
                cells.append("")
            else:
                cells.append(f"{v:.6g}" if c in _FLOAT_COLUMNS else str(v))
        with atomic_open(tsv) as f:
            f.write(old_tsv + "\t".join(cells) + "\n")
        with atomic_open(results) as f:
            f.write(old_text + line + "\n")
    return line


def read_results(results: PathLike) -> list[dict]:
    """All rows of ``<results>.tsv`` in file order, numbers converted."""
    tsv = tsv_path(results)
    if not tsv.is_file():
        raise UserError(f"{tsv}: no results yet; run steps/score.sh (run.sh stage 5) first")
    rows = []
    with open(tsv, encoding="utf-8") as f:
        header = tuple(f.readline().rstrip("\n").split("\t"))
        if header != COLUMNS and header not in LEGACY_HEADERS:
            raise UserError(f"{tsv}: unexpected header {list(header)}; expected {list(COLUMNS)}")
        for lineno, line in enumerate(f, 2):
            cells = line.rstrip("\n").split("\t")
            if len(cells) != len(header):
                raise UserError(f"{tsv}:{lineno}: expected {len(header)} tab-separated fields")
            row = dict(zip(header, cells))
            for c in OPTIONAL_COLUMNS:
                row.setdefault(c, "")
            try:
                for c in _FLOAT_COLUMNS:
                    row[c] = float(row[c]) if row[c] != "" else None
                for c in _INT_COLUMNS:
                    row[c] = int(row[c])
            except ValueError as e:
                raise UserError(f"{tsv}:{lineno}: bad number ({e})") from e
            rows.append(row)
    return rows


def latest_results(rows: list[dict]) -> list[dict]:
    """The last row for each (set, norm, backend), in order of each key's first appearance."""
    latest: dict[tuple[str, str, str], dict] = {}
    for row in rows:
        latest[(row["set"], row["norm"], row.get("backend") or "")] = row  # re-assigning keeps the position
    return list(latest.values())


def read_reference(path: PathLike) -> dict[str, dict[str, float]]:
    """Reference figures to show beside ours: YAML ``{<set>: {eer: 3.23, mindcf_0.01: 0.0028}}``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: reference results file not found")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"{path}: expected a mapping <set>: {{eer: .., mindcf_0.01: ..}}")
    ref: dict[str, dict[str, float]] = {}
    for name, metrics in data.items():
        unknown = set(metrics) - set(_FLOAT_COLUMNS[:3])
        if unknown:
            raise UserError(f"{path}: set '{name}': unknown keys {sorted(unknown)}; "
                            f"use {list(_FLOAT_COLUMNS[:3])}")
        ref[str(name)] = {k: float(v) for k, v in metrics.items()}
    return ref
