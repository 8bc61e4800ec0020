"""torch.distributed set-up and tear-down for training under torchrun (one code path for 1..N processes).

Why a module: the same training code runs as a single process (no process group at all) or under
torchrun (``WORLD_SIZE`` > 1: gloo on CPU, NCCL on CUDA). And the shutdown needs care: with torch's
CPU build, a gloo job that finishes and then lets the interpreter tear down (with or without
``destroy_process_group``) sometimes aborts at exit ("terminate called without an active exception",
SIGABRT) after all the work is done (see /work/shared/PITFALLS.md). :func:`finish` therefore ends with a
barrier, flushes everything, and leaves the process with ``os._exit`` so no C++ destructor of the gloo
threads runs; measured reliable (see tests/test_train_ddp.py and the report in the docs).
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dmha.common.device import resolve_device

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto", timeout_min: float = 180.0) -> DistInfo:
    """Resolve the device and, under torchrun (WORLD_SIZE > 1), join the process group.

    Each process of a CUDA run uses ``cuda:LOCAL_RANK``. The long timeout lets rank 0 validate while
    the other ranks wait.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_min))
    return DistInfo(rank, world, local_rank, device)


def broadcast_float(value: float, info: DistInfo) -> float:
    """Rank 0's ``value`` on every rank (validation results drive LR and stopping everywhere)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.broadcast(t, 0)
    return float(t.item())


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (in place; identity for a single process)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last training forward of an
    epoch the ranks' running statistics differ; this makes validation and checkpoints rank-independent.
    """
    if info.distributed:
        for b in module.buffers():
            dist.broadcast(b.data, 0)


def finish(info: DistInfo, exit_code: int = 0) -> None:
    """End a distributed process cleanly: barrier, flush, then ``os._exit`` (see module docstring).

    A single process just returns.
    """
    if not info.distributed:
        return
    dist.barrier()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
