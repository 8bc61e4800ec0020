"""Is a Slurm cluster reachable from here? Used by the @pytest.mark.slurm tests.

Without Slurm the tests are skipped with the reason and how to start one; in CI (``CI=true``), where
.ci/run starts Slurm before the tests, an unreachable Slurm fails them instead, so a broken bring-up
can never pass as "skipped".
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

START_HINT = "start one with: apt-get install -y slurm-wlm munge && bash tests/slurm/start_slurm.sh (as root)"


@functools.lru_cache(maxsize=1)
def slurm_unavailable_reason() -> str | None:
    """None when ``sinfo`` answers with a usable node, else why not."""
    if shutil.which("sinfo") is None:
        return f"Slurm is not installed (no sinfo on PATH); {START_HINT}"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True,
                              timeout=10)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within 10 s; {START_HINT}"
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"no Slurm controller reachable (sinfo: {err}); {START_HINT}"
    states = proc.stdout.split()
    if not any(s.startswith(("idle", "mix", "alloc", "comp")) and not s.endswith("*") for s in states):
        return f"no Slurm node can run jobs (node states: {' '.join(states) or 'none'}); {START_HINT}"
    return None


def require_slurm() -> None:
    """Skip the calling test without Slurm; fail it in CI, where Slurm must be up."""
    reason = slurm_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)
