"""bf16 autocast: where it is used and whether the hardware runs it natively.

Why a module of its own: training, validation, extraction and the benchmarks must agree on one rule.
``train.bf16`` is ``true``, ``false`` or ``auto``. ``auto`` turns bf16 autocast on only where the device
has native bf16 arithmetic — a CUDA GPU that reports bf16 support, or a CPU with AVX512-BF16 or AMX
tiles — because elsewhere oneDNN/cuDNN emulate bf16 and a step gets slower, not faster. On a CPU with
AVX512-BF16 a training step of the paper model takes about half the fp32 time (bench/bench_train.py).
The loss and the attention softmax stay in float32 under autocast (dmha.models.losses, dmha.models.pooling).
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Union

import torch

from dmha.models.config import check_bf16_setting

Bf16Setting = Union[bool, str]


def native_bf16(device: torch.device | str) -> bool:
    """True when ``device`` computes bf16 matrix products in hardware (CUDA bf16, AVX512-BF16, AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            fn = getattr(cpu, probe, None)
            if fn is not None and fn():
                return True
    return False


def resolve_bf16(setting: Bf16Setting, device: torch.device | str) -> bool:
    """The effective choice for ``device``: ``auto`` means :func:`native_bf16`; true/false as given."""
    setting = check_bf16_setting(setting)
    return native_bf16(device) if setting == "auto" else bool(setting)


def bf16_autocast(enabled: bool, device: torch.device | str) -> ContextManager:
    """``torch.autocast`` to bfloat16 on ``device`` when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def describe(setting: Bf16Setting, device: torch.device | str) -> str:
    """One log phrase, e.g. "bf16 autocast (auto: native bf16 on cpu)" or "float32"."""
    used = resolve_bf16(setting, device)
    dev = torch.device(device).type
    if setting == "auto":
        why = f"auto: {'native' if used else 'no native'} bf16 on {dev}"
        return f"bf16 autocast ({why})" if used else f"float32 ({why})"
    return "bf16 autocast" if used else "float32"
