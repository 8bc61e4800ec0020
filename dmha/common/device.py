"""Device choice: CUDA when available, else CPU; an explicit ``--device`` always wins."""

from __future__ import annotations

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
