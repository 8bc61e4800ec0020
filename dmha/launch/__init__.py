"""Job launcher: run ``JOB=1:N`` arrays of shell commands with per-job logs (Kaldi's run.pl idea).

``utils/launch.sh`` is the user-facing entry; :func:`launch` is the Python one. The array is expanded
in :mod:`dmha.launch.job`, run by a backend from :mod:`dmha.launch.backend` (``local`` now, ``slurm``
slots in as ``dmha/launch/slurm.py``), and any failed job fails the launch, naming its log.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmha.common.errors import UserError
from dmha.launch.backend import BACKENDS, Backend, get_backend
from dmha.launch.job import Job, JobSpec, build_command, job_script, make_jobs, parse_job_spec
from dmha.launch.resources import Resources

__all__ = ["BACKENDS", "Backend", "Job", "JobSpec", "LaunchResult", "build_command", "get_backend",
           "job_script", "launch", "make_jobs", "parse_job_spec", "Resources"]


class Interrupted(Exception):
    """The launcher got SIGTERM/SIGHUP (SIGINT arrives as KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class LaunchResult:
    jobs: list[Job]
    codes: dict[int, int]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if self.codes.get(j.index, 1) != 0]


def _raise_interrupted(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Interrupted(signum)


def launch(args: Sequence[str], *, backend: str = "local", max_parallel: int | None = None,
           check: bool = True, resources: Resources | None = None) -> LaunchResult:
    """Run ``[JOB=1:N] <log-with-JOB> <command words...>`` and wait for every job.

    With ``check`` a failed job raises :class:`UserError` naming each failed job, its exit code and
    log path (after all jobs ended, as run.pl does). A SIGINT/SIGTERM/SIGHUP while waiting cancels the
    jobs (their process groups are killed) and is re-raised. ``resources``: what each job asks for.
    """
    args = list(args)
    spec = parse_job_spec(args[0]) if args else None
    if spec is not None:
        args = args[1:]
    if len(args) < 2:
        raise UserError("usage: launch.sh [options] [JOB=1:N] <log-with-JOB> <command...>")
    log, words = args[0], args[1:]
    jobs = make_jobs(spec, log, words)
    runner = get_backend(backend, max_parallel, resources)
    old = {}
    if _in_main_thread():
        for s in (signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, _raise_interrupted)
    try:
        runner.submit(jobs)
        codes = runner.wait()
    except (KeyboardInterrupt, Interrupted):
        runner.cancel()
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    result = LaunchResult(jobs, codes)
    if check and result.failed:
        raise UserError(failure_message(result))
    return result


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def failure_message(result: LaunchResult) -> str:
    """One line naming every failed job with its exit code and log, plus the first failure's last line."""
    failed = result.failed
    parts = [f"job {j.index} (exit {result.codes.get(j.index)}): see {j.log}" for j in failed[:10]]
    more = f"; ... and {len(failed) - 10} more" if len(failed) > 10 else ""
    msg = f"{len(failed)} of {len(result.jobs)} jobs failed: {'; '.join(parts)}{more}"
    last = _last_output_line(Path(failed[0].log))
    if last:
        msg += f" | last output of job {failed[0].index}: {last}"
    return msg


def _last_output_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    body = [x for x in lines if x.strip() and not x.startswith("# ")]
    return body[-1].strip()[:200] if body else ""
