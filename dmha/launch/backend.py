"""The interface every job backend implements, and the registry that maps ``--backend`` to one.

The launcher only calls ``submit`` / ``wait`` / ``cancel``, so a backend for another scheduler is
one module with one class: register it in ``BACKENDS`` (``name -> "module:Class"``), import is lazy.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

from dmha.common.errors import UserError
from dmha.launch.job import Job
from dmha.launch.resources import Resources

#: ``--backend`` name -> "module:Class"; modules are imported only when chosen.
BACKENDS = {
    "local": "dmha.launch.local:LocalBackend",
    "slurm": "dmha.launch.slurm:SlurmBackend",
}


class Backend(ABC):
    """Runs an array of jobs, each writing its own log via :func:`dmha.launch.job.job_script`."""

    def __init__(self, max_parallel: int | None = None, resources: Resources | None = None) -> None:
        """``max_parallel``: at most this many jobs at once (None: no limit beyond the array size);
        ``resources``: what each job asks for (GPUs, CPUs, memory, time, nodes)."""
        if max_parallel is not None and max_parallel < 1:
            raise UserError(f"--max-parallel must be >= 1, got {max_parallel}")
        self.max_parallel = max_parallel
        self.resources = resources or Resources()

    @abstractmethod
    def submit(self, jobs: Sequence[Job]) -> None:
        """Start the array; returns without waiting for the jobs."""

    @abstractmethod
    def wait(self) -> dict[int, int]:
        """Block until every submitted job ended; return ``{job index: exit code}`` (0 = success)."""

    @abstractmethod
    def cancel(self) -> None:
        """Kill every job still queued or running (called on Ctrl-C / SIGTERM of the launcher)."""


def get_backend(name: str, max_parallel: int | None = None, resources: Resources | None = None) -> Backend:
    """Instantiate the backend registered under ``name``."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    module_name, cls_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise UserError(f"backend {name!r} is not available in this version ({module_name} missing); "
                            "use --backend local") from None
        raise
    return getattr(module, cls_name)(max_parallel=max_parallel, resources=resources)
