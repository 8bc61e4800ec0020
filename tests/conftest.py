"""Shared pytest fixtures and helpers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sigint_default() -> None:
    """``preexec_fn`` for a process a test sends Ctrl-C to: a job started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(args: list[str], cwd: Path | None = None, env: dict | None = None,
               check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a repo shell script/command with the repo's utils/ and steps/ on PATH; capture output."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{REPO}/utils:{REPO}/steps:" + full_env.get("PATH", "")
    old_path = full_env.get("PYTHONPATH")
    full_env["PYTHONPATH"] = str(REPO) + (f":{old_path}" if old_path else "")
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    proc = subprocess.run(args, cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} failed ({proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def repo() -> Path:
    return REPO
