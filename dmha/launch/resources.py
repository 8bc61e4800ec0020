"""What each job of an array asks the scheduler for (Kaldi's ``--gpu``/``--mem``/``--num-threads``).

The stage scripts state their needs once, independent of the backend: the local backend only checks
that they fit one machine, the Slurm backend turns them into sbatch options (see
:mod:`dmha.launch.slurm_config` for how a site maps them to partitions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dmha.common.errors import UserError

_MEM_RE = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class Resources:
    """Per-job requests. ``None`` means "the site's default" (from the Slurm config, else Slurm's)."""

    gpu: int = 0                      # GPUs per node
    num_threads: int = 1              # CPUs per task (--cpus-per-task)
    nodes: int = 1                    # nodes per job (one task per node; multi-node training)
    mem: str | None = None            # memory per node, Slurm syntax: 4G, 500M
    time: str | None = None           # wall-clock limit, Slurm syntax: 2:00:00, 1-00:00:00
    slurm_config: str | None = None   # path of the Slurm YAML config (else env / conf/slurm.yaml)
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)  # extra sbatch words for this launch

    def __post_init__(self) -> None:
        for name in ("gpu", "num_threads", "nodes"):
            v = getattr(self, name)
            low = 0 if name == "gpu" else 1
            if not isinstance(v, int) or v < low:
                raise UserError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {v!r}")
        if self.mem is not None and not _MEM_RE.match(self.mem):
            raise UserError(f"--mem {self.mem!r}: use Slurm's syntax, a number with an optional K/M/G/T "
                            "suffix (e.g. 4G)")
