"""Read only some rows of one matrix in a Kaldi binary ark: the crop, not the whole utterance.

Why: a training crop is 350 frames of an utterance that averages ~780 (VoxCeleb2); kaldiio always reads
(and decompresses) the whole matrix. Row-major matrix types let a reader seek to the crop's first row
and read just its bytes: ``FM`` (float32), ``CM2`` (Kaldi two-byte compression: one uint16 per value,
linear between a per-matrix min and range) and ``CM3`` (one byte per value, same idea). Kaldi's default
compression ``CM`` stores columns one after another and is not handled here (it is read whole).

Decoding of ``CM2``/``CM3`` goes through kaldiio's own elementwise ``uint_to_float``, so the rows equal
the same rows of ``kaldiio.load_mat`` bit for bit.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
from kaldiio.compression_header import GlobalHeader

from dmha.common.errors import UserError

#: matrix type token -> (kind code stored in side tables, numpy dtype of one stored value)
KINDS: dict[str, tuple[int, str]] = {"FM": (0, "<f4"), "CM2": (1, "<u2"), "CM3": (2, "<u1")}
KIND_NAMES = {code: name for name, (code, _) in KINDS.items()}
KIND_DTYPES = {code: np.dtype(dt) for _, (code, dt) in KINDS.items()}
_HEADER_READ = 32  # bytes enough for any supported header ("\0B" + token + fields)


@dataclass(frozen=True)
class MatrixLayout:
    """Where one matrix's rows are: ``data_offset`` is the byte of row 0 (after the header)."""

    kind: int
    rows: int
    cols: int
    data_offset: int
    min_value: float = 0.0   # CM2/CM3 only
    range: float = 0.0       # CM2/CM3 only

    @property
    def row_bytes(self) -> int:
        return self.cols * KIND_DTYPES[self.kind].itemsize

    @property
    def end(self) -> int:
        """One past the matrix's last byte in the ark."""
        return self.data_offset + self.rows * self.row_bytes


def split_entry(entry: str) -> tuple[str, int]:
    """``/path/file.ark:1234`` -> (``/path/file.ark``, 1234); a UserError for anything else."""
    path, sep, off = entry.rpartition(":")
    if not sep or not off.isdigit() or not path:
        raise UserError(f"feature entry '{entry}' is not 'file.ark:offset'; partial reads need plain "
                        "ark:offset entries (re-run the feature stage)")
    return path, int(off)


def parse_layout(head: bytes, offset: int, what: str) -> MatrixLayout:
    """The layout of the matrix whose header bytes (read at ark ``offset``) are ``head``."""
    if head[:2] != b"\0B":
        raise UserError(f"{what}: no binary Kaldi matrix at byte {offset} (archive changed or truncated?); "
                        "re-run the feature stage")
    space = head.find(b" ", 2)
    token = head[2:space].decode("ascii", "replace") if space > 0 else ""
    if token not in KINDS:
        raise UserError(f"{what}: matrix type '{token}' cannot be read partially (supported: "
                        f"{', '.join(KINDS)}); store features as float32 or CM2/CM3, or disable partial "
                        "reads (train.partial_reads=false)")
    kind = KINDS[token][0]
    p = space + 1
    if token == "FM":
        if len(head) < p + 10 or head[p] != 4 or head[p + 5] != 4:
            raise UserError(f"{what}: truncated or malformed matrix header at byte {offset}")
        rows = struct.unpack("<i", head[p + 1:p + 5])[0]
        cols = struct.unpack("<i", head[p + 6:p + 10])[0]
        return MatrixLayout(kind, rows, cols, offset + p + 10)
    if len(head) < p + 16:
        raise UserError(f"{what}: truncated matrix header at byte {offset}")
    min_value, range_, rows, cols = struct.unpack("<ffii", head[p:p + 16])
    return MatrixLayout(kind, rows, cols, offset + p + 16, min_value, range_)


def read_layout(fd: int, offset: int, what: str) -> MatrixLayout:
    """Read and parse the header of the matrix at ``offset`` of the open ark ``fd``."""
    return parse_layout(os.pread(fd, _HEADER_READ, offset), offset, what)


def read_rows(fd: int, layout: MatrixLayout, start: int, stop: int, what: str) -> np.ndarray:
    """Rows ``start:stop`` of the matrix as a new float32 array (C order), bit-equal to kaldiio's.

    A range outside the matrix or a short read (archive truncated on disk) is a UserError naming ``what``.
    """
    if not 0 <= start < stop <= layout.rows:
        raise UserError(f"{what}: rows {start}:{stop} requested from a matrix of {layout.rows} rows")
    nbytes = (stop - start) * layout.row_bytes
    buf = os.pread(fd, nbytes, layout.data_offset + start * layout.row_bytes)
    if len(buf) != nbytes:
        raise UserError(f"{what}: archive ends inside the matrix (got {len(buf)} of {nbytes} bytes at byte "
                        f"{layout.data_offset + start * layout.row_bytes}); the file is truncated: re-run "
                        "the feature stage")
    raw = np.frombuffer(buf, dtype=KIND_DTYPES[layout.kind]).reshape(stop - start, layout.cols)
    if layout.kind == KINDS["FM"][0]:
        return raw.astype(np.float32)  # a copy: the bytes object is read-only
    header = GlobalHeader(KIND_NAMES[layout.kind], layout.min_value, layout.range, layout.rows, layout.cols)
    return np.array(header.uint_to_float(raw), dtype=np.float32)
