"""Device choice: CUDA when available, else CPU; an explicit ``--device`` always wins."""

from __future__ import annotations

import os

import torch

from dmha.common.errors import UserError


def resolve_device(name: str | None = "auto") -> torch.device:
    """Map ``auto``/``cpu``/``cuda``/``cuda:N`` to a torch device, failing clearly if CUDA is absent."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for CUDA, but torch sees no GPU; use --device cpu")
    return dev


def use_deterministic_kernels(device: torch.device) -> str:
    """Make a CUDA training run repeat itself bit for bit (``train.deterministic: true``).

    Why: on CPU the training is already deterministic, so a run killed and resumed from its checkpoint
    ends with the same weights as an uninterrupted one. On CUDA, cuDNN picks convolution algorithms by
    heuristics and some (weight gradients, atomics) add in a varying order, so two runs - and a resumed
    one - drift apart in the last bits. This asks cuDNN and cuBLAS for their deterministic kernels (some
    are slower) and makes any op without one warn once. It must run before the first cuBLAS call of the
    process (the workspace setting is read then). Returns the phrase the training log prints.
    """
    if device.type != "cuda":
        return "deterministic (CPU kernels are)"
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    return "deterministic cuDNN/cuBLAS kernels (train.deterministic)"
