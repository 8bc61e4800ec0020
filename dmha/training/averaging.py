"""Per-epoch model snapshots and their average (checkpoint averaging).

Why: the weights at the end of one epoch carry that epoch's noise (the last mini-batches, the learning
rate). Averaging the weights of the last N epochs (or the N epochs with the best validation EER) is a
cheap ensemble that often gives a slightly better, and steadier, model than any single one of them
(WeSpeaker and ESPnet average their last/best checkpoints for the same reason).

Snapshots: with ``train.keep_epoch_models: K > 0`` training writes ``<exp>/models/epoch_<N>.pt`` after
every epoch, weights only, in the format of ``best.pt`` (``{"model": state_dict, "epoch", "step",
"val_eer", "embed_dim"}``; ``val_eer`` is None for an epoch without validation). Disk stays bounded: after
each epoch only the K most recent snapshots and the K with the lowest validation EER are kept (at most
2K files). K = 0 (the default, and the paper configs') writes none.

Averaging: every floating-point entry of the state dicts (weights and BatchNorm running mean/variance)
is the arithmetic mean, computed in float64 and cast back to the entry's dtype. Integer entries are
BatchNorm's ``num_batches_tracked`` counters: a mean of counters is no count of anything, so the average
keeps the largest (the newest member's: the averaged model has seen as many batches as it). The counter
only matters for BatchNorm with ``momentum=None`` (a cumulative average), which dmha does not use.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike

log = logging.getLogger(__name__)

MODELS_DIR = "models"
_SNAPSHOT = re.compile(r"^epoch_(\d+)\.pt$")
SELECTIONS = ("last", "best")


def snapshot_path(exp_dir: PathLike, epoch: int) -> Path:
    """``<exp>/models/epoch_<epoch>.pt``."""
    return Path(exp_dir) / MODELS_DIR / f"epoch_{int(epoch)}.pt"


def list_snapshots(exp_dir: PathLike) -> dict[int, Path]:
    """Epoch -> file of every complete ``epoch_<N>.pt`` under ``<exp>/models`` (temp files skipped)."""
    directory = Path(exp_dir) / MODELS_DIR
    if not directory.is_dir():
        return {}
    found = {}
    for p in directory.iterdir():
        m = _SNAPSHOT.match(p.name)
        if m and p.is_file():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def snapshots_to_keep(val_eers: dict[int, float | None], keep: int) -> set[int]:
    """Epochs whose snapshot survives pruning: the ``keep`` most recent and the ``keep`` best by EER.

    ``val_eers`` maps each epoch with a snapshot to its validation EER (None/NaN: not validated; such an
    epoch can only be kept as a recent one). Ties in EER go to the earlier epoch, as for best.pt, so
    best.pt's epoch is always among the kept ones.
    """
    if keep <= 0:
        return set()
    epochs = sorted(val_eers)
    recent = set(epochs[-keep:])
    return recent | set(_best_epochs(val_eers, keep))


def _best_epochs(val_eers: dict[int, float | None], n: int) -> list[int]:
    """The ``n`` validated epochs of lowest EER (ties: earlier epoch first, as best.pt), best first."""
    valid = [(float(e), ep) for ep, e in val_eers.items() if e is not None and math.isfinite(float(e))]
    return [ep for _, ep in sorted(valid)[:n]]


def prune_snapshots(exp_dir: PathLike, val_eers: dict[int, float | None], keep: int) -> list[int]:
    """Delete the snapshots :func:`snapshots_to_keep` does not keep; return the deleted epochs."""
    on_disk = list_snapshots(exp_dir)
    known = {ep: val_eers.get(ep) for ep in on_disk}
    kept = snapshots_to_keep(known, keep)
    deleted = []
    for ep, path in on_disk.items():
        if ep not in kept:
            path.unlink(missing_ok=True)
            deleted.append(ep)
    return deleted


@dataclass
class Snapshot:
    """One loaded epoch model."""

    epoch: int
    step: int | None
    val_eer: float | None
    state: dict[str, torch.Tensor]
    path: Path
    extra: dict[str, Any]


def load_snapshot(path: Path) -> Snapshot:
    """Read one ``epoch_<N>.pt`` (or any best.pt-format file) with the safe loader."""
    from dmha.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
        raise UserError(f"{path}: not an epoch model written by dmha training (no 'model'/'epoch' entry)")
    eer = ckpt.get("val_eer")
    return Snapshot(epoch=int(ckpt["epoch"]), step=None if ckpt.get("step") is None else int(ckpt["step"]),
                    val_eer=None if eer is None or not math.isfinite(float(eer)) else float(eer),
                    state=ckpt["model"], path=Path(path),
                    extra={k: v for k, v in ckpt.items() if k not in ("model", "epoch", "step", "val_eer")})


def select_snapshots(exp_dir: PathLike, num: int, select: str) -> list[Snapshot]:
    """The ``num`` snapshots to average: the latest epochs (``last``) or the lowest validation EERs
    (``best``).

    Returned in epoch order. A UserError names the exp dir when fewer than ``num`` qualify.
    """
    if select not in SELECTIONS:
        raise UserError(f"--select must be one of {', '.join(SELECTIONS)}, got '{select}'")
    if num < 1:
        raise UserError(f"--num must be at least 1, got {num}")
    files = list_snapshots(exp_dir)
    hint = ("train with train.keep_epoch_models >= N (steps/train.sh --override "
            "\"train.keep_epoch_models=N\"), or lower --num")
    if not files:
        raise UserError(f"{exp_dir}/{MODELS_DIR}: no epoch models (epoch_<N>.pt); {hint}")
    if select == "last":
        chosen = sorted(files)[-num:]
        snaps = [load_snapshot(files[ep]) for ep in chosen]
    else:
        loaded = {ep: load_snapshot(p) for ep, p in files.items()}
        chosen = _best_epochs({ep: s.val_eer for ep, s in loaded.items()}, num)
        snaps = [loaded[ep] for ep in sorted(chosen)]
    if len(snaps) < num:
        what = "epoch models" if select == "last" else "validated epoch models"
        raise UserError(f"{exp_dir}/{MODELS_DIR}: {len(snaps)} {what}, fewer than --num {num}; {hint}")
    return snaps


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean of state dicts with the same keys and shapes (float64 accumulation; integers: the maximum).

    See the module docstring for why integer entries (BatchNorm's ``num_batches_tracked``) take the max.
    """
    if not states:
        raise UserError("nothing to average: no state dicts given")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            diff = sorted(set(s) ^ set(keys))
            raise UserError(f"model {i} has other parameters than model 0 ({diff[:3] or 'order differs'}); "
                            "all averaged models must come from one training run")
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        tensors = [s[k] for s in states]
        shape, dtype = tensors[0].shape, tensors[0].dtype
        if any(t.shape != shape or t.dtype != dtype for t in tensors):
            raise UserError(f"parameter '{k}' differs in shape or dtype between the models to average")
        if dtype.is_floating_point or dtype.is_complex:
            acc = torch.zeros(shape, dtype=torch.complex128 if dtype.is_complex else torch.float64)
            for t in tensors:
                acc += t.detach().cpu().to(acc.dtype)
            out[k] = (acc / len(tensors)).to(dtype)
        else:
            out[k] = torch.stack([t.detach().cpu() for t in tensors]).amax(dim=0)
    return out


def average_snapshots(snaps: Sequence[Snapshot], select: str) -> dict[str, Any]:
    """A best.pt-format checkpoint of the averaged snapshots (``epoch``/``step`` of the newest member)."""
    newest = max(snaps, key=lambda s: s.epoch)
    ckpt: dict[str, Any] = {k: v for k, v in newest.extra.items() if k == "embed_dim"}
    ckpt.update({"model": average_state_dicts([s.state for s in snaps]), "epoch": newest.epoch,
                 "step": newest.step, "val_eer": None, "averaged_epochs": [int(s.epoch) for s in snaps],
                 "averaged_val_eers": [s.val_eer for s in snaps], "select": select})
    return ckpt
