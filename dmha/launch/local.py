"""Local backend: each job is a bash process on this machine, at most ``max_parallel`` at once.

Each job runs in its own session/process group (``start_new_session``) so that cancelling kills the
job's whole process tree (pipelines, python workers) and nothing else; the launcher itself is not in
those groups, so a Ctrl-C in the terminal reaches only the launcher, which then cancels the jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from dmha.common.errors import UserError
from dmha.launch.backend import Backend
from dmha.launch.job import Job, job_script
from dmha.launch.resources import Resources

#: Seconds between SIGTERM and SIGKILL when cancelling.
KILL_GRACE_S = 5.0


class LocalBackend(Backend):
    def __init__(self, max_parallel: int | None = None, resources: Resources | None = None) -> None:
        super().__init__(max_parallel, resources)
        if self.resources.nodes > 1:
            raise UserError(f"--nodes {self.resources.nodes}: the local backend runs on this machine only; "
                            "use --backend slurm for multi-node jobs")
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen] = {}
        self._cancelled = False
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[int, Future] = {}
        self._n = 0

    def submit(self, jobs: Sequence[Job]) -> None:
        workers = min(len(jobs), self.max_parallel or len(jobs))
        self._n = len(jobs)
        self._pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="job")
        self._futures = {j.index: self._pool.submit(self._run, j) for j in jobs}

    def _run(self, job: Job) -> int:
        with self._lock:
            if self._cancelled:
                return 130
            proc = subprocess.Popen(["bash", "-c", job_script(job, f"job {job.index} of {self._n}")],
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self._running[job.index] = proc
        try:
            rc = proc.wait()
        finally:
            with self._lock:
                self._running.pop(job.index, None)
        return rc if rc >= 0 else 128 - rc  # killed by signal N -> 128+N, as the shell reports it

    def wait(self) -> dict[int, int]:
        assert self._pool is not None, "submit() first"
        codes = {i: f.result() for i, f in self._futures.items()}
        self._pool.shutdown()
        return codes

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            procs = list(self._running.values())
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p, signal.SIGKILL)  # also reaps stragglers left in the group


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the job's session leader pid is its process-group id
    except (ProcessLookupError, PermissionError):
        pass
