"""Content digests of a data dir: its audio files and its feature matrices, one SHA-256 each.

Why: "the corpus is identical for a seed" is a claim users and other machines must be able to check
without shipping the corpus. The digest covers what training sees, in utterance order, and not where it
lies: the audio digest hashes each utterance's id and file bytes (the path is left out, so two clones in
other folders agree); the feature digest hashes each id, matrix shape and float32 bytes (so it does not
depend on how ark files are split into jobs). Pipes in wav.scp are hashed by their command text, since
running them is the feature stage's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, read_kv
from dmha.data.datadir import c_sort_key


@dataclass(frozen=True)
class Digest:
    """One part of a data dir (``audio`` or ``features``): entry count and SHA-256 hex digest."""

    what: str
    count: int
    sha256: str


def audio_digest(data_dir: PathLike) -> Digest:
    """SHA-256 over (utt id, audio file bytes) of every wav.scp entry, in C-sorted utterance order."""
    wav = read_kv(Path(data_dir) / "wav.scp")
    h = hashlib.sha256()
    for utt in sorted(wav, key=c_sort_key):
        entry = wav[utt]
        h.update(utt.encode() + b"\0")
        if entry.rstrip().endswith("|"):
            h.update(b"pipe:" + entry.encode())
            continue
        path = Path(entry)
        if not path.is_file():
            raise UserError(f"{data_dir}/wav.scp: {utt}: audio file {path} not found")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return Digest("audio", len(wav), h.hexdigest())


def feature_digest(data_dir: PathLike) -> Digest:
    """SHA-256 over (utt id, shape, float32 bytes) of every feats.scp matrix, in C-sorted order."""
    import kaldiio

    scp = Path(data_dir) / "feats.scp"
    feats = read_kv(scp)
    h = hashlib.sha256()
    for utt in sorted(feats, key=c_sort_key):
        try:
            mat = np.ascontiguousarray(kaldiio.load_mat(feats[utt]), dtype=np.float32)
        except Exception as e:  # kaldiio raises many kinds for truncated/missing arks
            raise UserError(f"{scp}: {utt}: cannot read its features ({e}); recompute them with "
                            f"steps/make_fbank.sh --force true {data_dir}") from e
        h.update(utt.encode() + b"\0" + np.asarray(mat.shape, dtype=np.int64).tobytes() + mat.tobytes())
    return Digest("features", len(feats), h.hexdigest())
