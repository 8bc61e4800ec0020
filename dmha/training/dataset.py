"""Training data: a deterministic per-epoch plan of random crops, and the dataset that serves them.

Why a "plan": the shuffle order and the crop offset of every utterance in an epoch are a pure function
of (seed, epoch) (a numpy Generator seeded from both). A resumed run regenerates the plan of its
epoch and skips the optimizer steps already done, so no DataLoader/sampler RNG state has to be saved,
and every process of a distributed run derives the same plan and takes its own share of each batch.

Per-utterance CMN is computed over the WHOLE utterance before cropping (as the reference code does),
through :func:`dmha.features.fbank.normalize_features`, the one normalisation used everywhere.
Utterances shorter than the crop (prepare_lists drops those below ``train.min_frames``) are padded
by repetition (the frames are tiled), so every crop in a batch has the same length.

Partial reads (``train.partial_reads``): when the feature stage wrote CMN side tables
(:mod:`dmha.features.cmn_table`), a crop reads only its own rows and subtracts the stored whole-utterance
mean: the same crop, bit for bit, at ~crop/length of the bytes and without the whole-utterance pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch.utils.data import Dataset

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, read_kv
from dmha.features.arkrows import read_rows
from dmha.features.cmn_table import CmnTable
from dmha.features.fbank import normalize_features


def load_features(entry: str, utt: str) -> np.ndarray:
    """A writable float32 copy of one feats.scp entry; a UserError naming ``utt`` if it cannot be read."""
    try:
        mat = kaldiio.load_mat(entry)
    except Exception as e:
        raise UserError(f"cannot read features of '{utt}' ({entry}): {e}; "
                        "re-run the feature stage (steps/make_fbank.sh)") from None
    return np.array(mat, dtype=np.float32)  # kaldiio may memory-map: copy


class ScpFeatures(Sequence):
    """Feature matrices of ``(utt, scp entry)`` pairs, read from disk on each access.

    Why: validation embeds the same utterances every epoch; holding them in memory costs gigabytes at
    VoxCeleb scale (100 held-out speakers: ~4 GB) on the main process for the whole run, while reading
    them back (page cache) costs little next to the forward passes. Every matrix is read once here, which
    finds unreadable entries before training starts and gives the lengths that batching needs.
    """

    def __init__(self, utts: Sequence[str], entries: Sequence[str]) -> None:
        self.utts = list(utts)
        self.entries = list(entries)
        self.lengths = [int(self[i].shape[0]) for i in range(len(self.entries))]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return load_features(self.entries[i], self.utts[i])


@dataclass
class TrainList:
    """The training list written by prepare_lists: parallel arrays, sorted by utterance id."""

    utts: list[str]
    labels: np.ndarray        # int64 class index per utterance
    num_frames: np.ndarray    # int64 frames per utterance
    feats: list[str]          # feats.scp entries (``ark:offset``), kaldiio-readable

    def __len__(self) -> int:
        return len(self.utts)


def read_train_list(list_path: PathLike, scp_path: PathLike) -> TrainList:
    """Read ``train.list`` (``utt label num_frames``) and its ``train_feats.scp`` (``utt ark:offset``)."""
    list_path, scp_path = Path(list_path), Path(scp_path)
    rows = read_kv(list_path)
    scp = read_kv(scp_path)
    utts, labels, frames, feats = [], [], [], []
    for utt, rest in rows.items():
        parts = rest.split()
        if len(parts) != 2:
            raise UserError(f"{list_path}: line for '{utt}' must be 'utt label num_frames'; "
                            "re-run steps/prepare_lists.sh")
        if utt not in scp:
            raise UserError(f"{scp_path}: no features for '{utt}'; re-run steps/prepare_lists.sh")
        utts.append(utt)
        labels.append(int(parts[0]))
        frames.append(int(parts[1]))
        feats.append(scp[utt])
    if not utts:
        raise UserError(f"{list_path}: empty training list; check the length filter in prepare_lists")
    return TrainList(utts, np.asarray(labels, dtype=np.int64), np.asarray(frames, dtype=np.int64), feats)


def epoch_plan(num_frames: np.ndarray, crop_frames: int, seed: int, epoch: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle order and crop start of every utterance for ``epoch``; pure function of (seed, epoch).

    Returns ``(order, offsets)``: ``order`` is a permutation of the utterance indices and
    ``offsets[i]`` the first frame of utterance i's crop (0 when it is not longer than the crop).
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(num_frames))
    high = np.maximum(np.asarray(num_frames, dtype=np.int64) - crop_frames, 0) + 1
    offsets = rng.integers(0, high)
    return order, offsets


def step_batches(order: np.ndarray, offsets: np.ndarray, batch_size: int, grad_accum: int, rank: int,
                 world_size: int, start_step: int = 0) -> list[list[tuple[int, int]]]:
    """This rank's micro-batches of ``(utt_index, offset)`` for steps ``start_step..`` of the epoch.

    One optimizer step consumes ``batch_size`` utterances of the plan (the last incomplete step is
    dropped); they are dealt round-robin to the ``world_size`` ranks and each rank's share is split into
    ``grad_accum`` equal micro-batches. So the effective batch is the same for any number of ranks.
    """
    check_batch_split(batch_size, grad_accum, world_size)
    n_steps = len(order) // batch_size
    out: list[list[tuple[int, int]]] = []
    for step in range(start_step, n_steps):
        idx = order[step * batch_size:(step + 1) * batch_size][rank::world_size]
        for micro in np.array_split(idx, grad_accum):
            out.append([(int(i), int(offsets[i])) for i in micro])
    return out


def check_batch_split(batch_size: int, grad_accum: int, world_size: int) -> int:
    """Micro-batch size per rank; a :class:`UserError` if the effective batch does not split evenly."""
    if batch_size < 1 or grad_accum < 1 or batch_size % (grad_accum * world_size):
        raise UserError(f"train.batch_size={batch_size} must be divisible by train.grad_accum={grad_accum} "
                        f"x processes={world_size}; change one of them (--override train.batch_size=...)")
    return batch_size // (grad_accum * world_size)


class CropDataset(Dataset):
    """Item ``(utt_index, offset)`` -> (crop (crop_frames, F) float32 tensor, label).

    Whole-utterance path: features are read with kaldiio from their ``ark:offset`` entries, CMN'd over
    the whole utterance, cropped from ``offset`` (or tiled to the crop length when shorter).
    Partial path (``table`` given, norm ``cmn`` or ``none``): only the crop's rows are read and the
    table's mean is subtracted; the result is identical.
    """

    def __init__(self, train_list: TrainList, crop_frames: int, norm: str = "cmn", cache: bool = False,
                 table: CmnTable | None = None):
        if table is not None and norm not in PARTIAL_NORMS:
            raise UserError(f"partial reads support feature norm {' or '.join(PARTIAL_NORMS)}, not '{norm}'; "
                            "set train.partial_reads=false")
        self.list = train_list
        self.crop = int(crop_frames)
        self.norm = norm
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        self.table = table
        self._fds: dict[int, int] = {}
        self._fd_pid = -1

    def __len__(self) -> int:
        return len(self.list)

    def _load(self, i: int) -> np.ndarray:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        mat = load_features(self.list.feats[i], self.list.utts[i])
        if self.cache is not None:
            self.cache[i] = mat
        return mat

    def _check_offset(self, i: int, offset: int, t: int) -> None:
        if offset < 0 or (t >= self.crop and offset + self.crop > t) or (t < self.crop and offset != 0):
            raise UserError(f"crop of {self.crop} frames from frame {offset} is beyond utterance "
                            f"'{self.list.utts[i]}' ({t} frames, {self.list.feats[i]}); the training list "
                            "does not match the features: re-run steps/prepare_lists.sh")

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, offset = item
        if self.table is not None:
            return self._partial_crop(i, offset), int(self.list.labels[i])
        feats = normalize_features(torch.from_numpy(self._load(i)), mode=self.norm)
        t = feats.shape[0]
        self._check_offset(i, offset, t)
        if t >= self.crop:
            crop = feats[offset:offset + self.crop]
        else:  # shorter than the crop: repeat the utterance until it fills the crop
            crop = feats[torch.arange(self.crop) % t]
        return crop.contiguous(), int(self.list.labels[i])

    def _fd(self, file_index: int) -> int:
        """An open descriptor of an ark, per process (DataLoader workers must not share file offsets)."""
        if self._fd_pid != os.getpid():
            self._fds, self._fd_pid = {}, os.getpid()
        fd = self._fds.get(file_index)
        if fd is None:
            path = self.table.arks[file_index]  # type: ignore[union-attr]
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise UserError(f"cannot open {path}: {e.strerror}; re-run the feature stage") from None
            self._fds[file_index] = fd
        return fd

    def _partial_crop(self, i: int, offset: int) -> torch.Tensor:
        table = self.table
        assert table is not None
        layout = table.layout(i)
        t = layout.rows
        self._check_offset(i, offset, t)
        what = f"{table.arks[table.file_index[i]]} (utterance '{self.list.utts[i]}')"
        stop = offset + self.crop if t >= self.crop else t
        x = torch.from_numpy(read_rows(self._fd(int(table.file_index[i])), layout, offset, stop, what))
        if self.norm == "cmn":
            x = x - torch.from_numpy(table.mean[i])
        if t < self.crop:
            x = x[torch.arange(self.crop) % t]
        return x.contiguous()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fds"], state["_fd_pid"] = {}, -1  # descriptors do not travel to spawned workers
        return state


#: Feature normalisations the partial-read path reproduces exactly.
PARTIAL_NORMS = ("cmn", "none")


def collate_crops(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack equal-length crops into (B, T, F) and labels into (B,) int64."""
    feats = torch.stack([b[0] for b in batch])
    labels = torch.tensor([b[1] for b in batch], dtype=torch.long)
    return feats, labels
