"""The site's Slurm settings for ``--cmd slurm`` (the role of Kaldi's conf/slurm.conf), as YAML.

Why a file: partitions, accounts, QOS and time limits differ per cluster, while the stage scripts only
say what a job needs (:class:`dmha.launch.resources.Resources`). The file maps those needs to sbatch
options. It is found in this order: the ``--slurm-config`` option of utils/launch.sh, the environment
variable ``DMHA_SLURM_CONFIG``, ``conf/slurm.yaml`` in the current directory (run.sh runs from the repo
root; conf/slurm.example.yaml is a template); without any, Slurm's own defaults apply. Every key is
optional::

    partition: cpu              # --partition for jobs without GPUs (null: the cluster's default)
    gpu_partition: gpu          # --partition for jobs asking for GPUs (null: same as partition)
    gpu_option: "--gres=gpu:{gpu}"   # how this site requests {gpu} GPUs per node
    time: "24:00:00"            # --time unless launch.sh --time is given
    mem: 8G                     # --mem (per node) unless launch.sh --mem is given
    max_parallel: 50            # array throttle (%N) unless launch.sh --max-parallel is given
    sbatch_args: ["--account=myproj", "--qos=normal"]   # added to every submission
    gpu_sbatch_args: ["--constraint=a100"]             # added to GPU submissions only
    poll_interval: 10           # seconds between squeue calls while waiting (>= 0.5)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from dmha.common.errors import UserError

ENV_VAR = "DMHA_SLURM_CONFIG"
DEFAULT_PATH = Path("conf") / "slurm.yaml"


@dataclass(frozen=True)
class SlurmConfig:
    partition: str | None = None
    gpu_partition: str | None = None
    gpu_option: str = "--gres=gpu:{gpu}"
    time: str | None = None
    mem: str | None = None
    max_parallel: int | None = None
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)
    gpu_sbatch_args: tuple[str, ...] = field(default_factory=tuple)
    poll_interval: float = 10.0
    source: str = "built-in defaults"  # where the settings came from (for messages)


_TYPES = {"partition": str, "gpu_partition": str, "gpu_option": str, "time": str, "mem": str,
          "max_parallel": int, "sbatch_args": list, "gpu_sbatch_args": list, "poll_interval": (int, float)}


def find_config(explicit: str | None = None) -> Path | None:
    """The config file to use (see module docstring), or None for the built-in defaults."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise UserError(f"Slurm config {p}: file not found (--slurm-config)")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env)
        if not p.is_file():
            raise UserError(f"Slurm config {p}: file not found (environment variable {ENV_VAR})")
        return p
    return DEFAULT_PATH if DEFAULT_PATH.is_file() else None


def load_slurm_config(explicit: str | None = None) -> SlurmConfig:
    """Read and check the config; unknown keys and wrong types are errors naming the file and key."""
    path = find_config(explicit)
    if path is None:
        return SlurmConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"Slurm config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"Slurm config {path}: expected a mapping of settings, got {type(raw).__name__}")
    known = {f.name for f in fields(SlurmConfig)} - {"source"}
    values: dict = {}
    for key, value in raw.items():
        if key not in known:
            raise UserError(f"Slurm config {path}: unknown key {key!r}; "
                            f"known keys: {', '.join(sorted(known))}")
        if value is None:
            continue
        want = _TYPES[key]
        if not isinstance(value, want) or isinstance(value, bool):
            raise UserError(f"Slurm config {path}: {key} must be {_type_name(want)}, got {value!r}")
        if key in ("sbatch_args", "gpu_sbatch_args"):
            if not all(isinstance(v, str) for v in value):
                raise UserError(f"Slurm config {path}: {key} must be a list of strings, got {value!r}")
            value = tuple(value)
        values[key] = value
    if values.get("max_parallel", 1) < 1:
        raise UserError(f"Slurm config {path}: max_parallel must be >= 1")
    if values.get("poll_interval", 1.0) < 0.5:
        raise UserError(f"Slurm config {path}: poll_interval must be >= 0.5 seconds")
    if "{gpu}" not in values.get("gpu_option", "{gpu}"):
        raise UserError(f"Slurm config {path}: gpu_option must contain {{gpu}}, e.g. \"--gres=gpu:{{gpu}}\"")
    return SlurmConfig(**values, source=str(path))


def _type_name(t) -> str:
    names = {str: "a string", int: "an integer", list: "a list", (int, float): "a number"}
    return names.get(t, str(t))
