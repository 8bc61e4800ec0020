"""Checkpoints that hold everything needed to resume a run exactly, loadable with ``weights_only=True``.

Why: a training run may be killed at any moment (kill -9, a cluster pre-emption). Re-running the stage
must continue as if nothing happened: same weights, same optimizer moments, same LR, same patience
counters and the same random streams. Everything is stored as tensors, numbers, strings, lists and
dicts, so ``torch.load(..., weights_only=True)`` (no pickle of arbitrary objects) can read it back.
The file is written to a temporary name and renamed, so a killed writer never leaves a truncated file.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike


def save_checkpoint(state: dict[str, Any], path: PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then atomically rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (safe loader: no arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt/foreign file: say which, and what to do
        raise UserError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e}); delete it to restart") \
            from None


def get_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU and every CUDA device) as weights_only-safe values."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured (CUDA states only if CUDA is present now)."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in py_state), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
