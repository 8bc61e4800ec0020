"""Per-utterance CMN side tables: what the partial-read training path needs to crop without the whole
utterance.

Today's crop is ``normalize(whole utterance)[offset:offset + crop]``: CMN needs the mean over ALL frames,
so every crop reads its whole matrix. The feature stage therefore also writes, beside each ark
``raw_fbank_<set>.<job>.ark``, a table ``raw_fbank_<set>.<job>.cmn.npy`` with one row per matrix: its
scp offset, layout (type, rows, cols, byte offset of row 0) and the float32 CMN mean computed by
:func:`dmha.features.fbank.utterance_mean` (the code path :func:`normalize_features` uses, so
``rows - mean`` is bit-equal to the normalised whole utterance's rows).

A table that no longer matches its archive (features recomputed, file replaced or truncated) must not
silently give wrong means. Each row carries the ark's size and a CRC32 of its first and last 64 KiB, checked
once per ark before training; the rows of every utterance are checked against ``train.list``; a matrix
that would end past the ark's end is reported as a truncated archive. A copied archive (rsync to a local
disk) keeps its fingerprint, so tables travel with their arks.

Tables for arks written before this existed: ``python -m dmha.bin.cmn_stats <feats.scp>``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open
from dmha.features.arkrows import KIND_DTYPES, MatrixLayout, read_layout, split_entry
from dmha.features.fbank import utterance_mean

_FP_SPAN = 1 << 16  # bytes hashed at each end of an ark for its fingerprint


def table_dtype(n_feats: int) -> np.dtype:
    """One side-table row (structured, little-endian, fixed size: the table can be memory-mapped)."""
    return np.dtype([("offset", "<i8"), ("kind", "u1"), ("rows", "<i4"), ("cols", "<i4"),
                     ("data_offset", "<i8"), ("min_value", "<f4"), ("range", "<f4"),
                     ("ark_size", "<i8"), ("ark_crc", "<u4"), ("mean", "<f4", (n_feats,))])


def table_path(ark: PathLike) -> Path:
    """``x/raw_fbank_train.3.ark`` -> ``x/raw_fbank_train.3.cmn.npy`` (removed with its job's files)."""
    ark = Path(ark)
    return ark.with_name((ark.name[:-4] if ark.name.endswith(".ark") else ark.name) + ".cmn.npy")


def ark_fingerprint(path: PathLike) -> tuple[int, int]:
    """(size, CRC32 of the first and last 64 KiB): cheap, survives copying, changes on recompute."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        crc = zlib.crc32(f.read(_FP_SPAN))
        if size > _FP_SPAN:
            f.seek(max(_FP_SPAN, size - _FP_SPAN))
            crc = zlib.crc32(f.read(), crc)
    return size, crc


def write_table(ark: PathLike, entries: Sequence[tuple[str, int]],
                means: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write the side table of ``ark`` for its ``(utt, scp offset)`` entries; return its path.

    ``means``: the CMN mean of each utterance as stored (None: read every matrix back to compute it,
    for arks written without a table). The mean is computed with one torch thread, the setting of
    DataLoader workers and feature jobs.
    """
    ark = Path(ark)
    size, crc = ark_fingerprint(ark)
    rows = []
    fd = os.open(ark, os.O_RDONLY)
    try:
        layouts = [read_layout(fd, off, f"{ark} (utterance '{utt}')") for utt, off in entries]
    finally:
        os.close(fd)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for (utt, off), lay in zip(entries, layouts):
            if lay.end > size:
                raise UserError(f"{ark}: utterance '{utt}' ends at byte {lay.end}, past the end of the file "
                                f"({size} bytes): the archive is truncated; re-run the feature stage")
            mean = means[utt] if means is not None else utterance_mean(kaldiio.load_mat(f"{ark}:{off}"))
            rows.append((off, lay.kind, lay.rows, lay.cols, lay.data_offset, lay.min_value, lay.range,
                         size, crc, np.asarray(mean, dtype=np.float32)))
    finally:
        torch.set_num_threads(threads)
    n_feats = layouts[0].cols if layouts else 0
    table = np.array(rows, dtype=table_dtype(n_feats))
    out = table_path(ark)
    with atomic_open(out, "wb", encoding=None) as f:
        np.save(f, table, allow_pickle=False)
    return out


@dataclass
class CmnTable:
    """Side-table rows for a list of utterances (parallel arrays), checked against their arks.

    ``arks[file_index[i]]`` holds utterance i; its rows start at byte ``data_offset[i]``.
    """

    arks: list[str]
    file_index: np.ndarray   # int32 (N,)
    kind: np.ndarray         # uint8 (N,)
    rows: np.ndarray         # int64 (N,)
    cols: np.ndarray         # int64 (N,)
    data_offset: np.ndarray  # int64 (N,)
    min_value: np.ndarray    # float32 (N,)
    range: np.ndarray        # float32 (N,)
    mean: np.ndarray         # float32 (N, F)

    def layout(self, i: int) -> MatrixLayout:
        return MatrixLayout(int(self.kind[i]), int(self.rows[i]), int(self.cols[i]), int(self.data_offset[i]),
                            float(self.min_value[i]), float(self.range[i]))


def missing_tables(entries: Sequence[str]) -> list[Path]:
    """Side tables that the arks of these scp entries lack (empty: partial reads are possible)."""
    arks = {split_entry(e)[0] for e in entries}
    return sorted(p for p in (table_path(a) for a in arks) if not p.is_file())


def load_tables(utts: Sequence[str], entries: Sequence[str], num_frames: Sequence[int] | np.ndarray,
                ) -> CmnTable:
    """The side-table rows of ``utts`` (their feats.scp ``entries``), verified; UserError naming the
    utterance/file on any mismatch (missing table or row, changed archive, frame count, truncation)."""
    by_ark: dict[str, list[int]] = {}
    offsets = np.empty(len(entries), dtype=np.int64)
    for i, e in enumerate(entries):
        path, off = split_entry(e)
        by_ark.setdefault(path, []).append(i)
        offsets[i] = off
    n = len(entries)
    out: CmnTable | None = None
    arks = sorted(by_ark)
    for a, ark in enumerate(arks):
        idx = np.asarray(by_ark[ark], dtype=np.int64)
        tpath = table_path(ark)
        if not tpath.is_file():
            raise UserError(f"{tpath}: no CMN side table for {ark} (utterance '{utts[idx[0]]}'); write it "
                            "with python -m dmha.bin.cmn_stats <feats.scp>, or set train.partial_reads=false")
        try:
            table = np.load(tpath, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"{tpath}: unreadable side table ({e}); rewrite it with "
                            "python -m dmha.bin.cmn_stats <feats.scp>") from None
        if not os.path.isfile(ark):
            raise UserError(f"{ark}: archive missing (utterance '{utts[idx[0]]}'); re-run the feature stage")
        size, crc = ark_fingerprint(ark)
        if len(table) and (int(table["ark_size"][0]) != size or int(table["ark_crc"][0]) != crc):
            why = "is shorter (truncated?)" if size < int(table["ark_size"][0]) else "was rewritten"
            raise UserError(f"{tpath} does not match {ark}: the archive {why} since the table was written "
                            f"(utterance '{utts[idx[0]]}'); re-run the feature stage, or rewrite the table "
                            "with python -m dmha.bin.cmn_stats <feats.scp>")
        order = np.argsort(table["offset"], kind="stable")
        pos = np.searchsorted(table["offset"], offsets[idx], sorter=order)
        pos = np.minimum(pos, max(len(table) - 1, 0))
        found = order[pos] if len(table) else np.zeros(len(idx), dtype=np.int64)
        ok = (table["offset"][found] == offsets[idx]) if len(table) else np.zeros(len(idx), dtype=bool)
        if not ok.all():
            bad = int(idx[np.argmin(ok)])
            raise UserError(f"{tpath}: no row for utterance '{utts[bad]}' ({entries[bad]}); the table does "
                            "not match the archive: rewrite it with python -m dmha.bin.cmn_stats <feats.scp>")
        rows = table[found]
        if out is None:
            f = table.dtype["mean"].shape[0]
            out = CmnTable(arks, np.zeros(n, np.int32), np.zeros(n, np.uint8), np.zeros(n, np.int64),
                           np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.float32),
                           np.zeros(n, np.float32), np.zeros((n, f), np.float32))
        out.file_index[idx] = a
        for name in ("kind", "rows", "cols", "data_offset", "min_value", "range", "mean"):
            getattr(out, name)[idx] = rows[name]
        itemsize = np.array([KIND_DTYPES[k].itemsize for k in range(len(KIND_DTYPES))])[rows["kind"]]
        ends = rows["data_offset"] + rows["rows"].astype(np.int64) * rows["cols"] * itemsize
        if (ends > size).any():
            bad = int(idx[np.argmax(ends > size)])
            raise UserError(f"{ark}: utterance '{utts[bad]}' ends past the end of the file ({size} bytes): "
                            "the archive is truncated; re-run the feature stage")
    if out is None:
        raise UserError("partial reads: no utterances given")
    frames = np.asarray(num_frames, dtype=np.int64)
    if len(frames) == n and (out.rows != frames).any():
        bad = int(np.argmax(out.rows != frames))
        raise UserError(f"side table of {out.arks[out.file_index[bad]]}: utterance '{utts[bad]}' has "
                        f"{out.rows[bad]} frames there but {frames[bad]} in the training list; the lists are "
                        "older than the features: re-run steps/prepare_lists.sh")
    return out
