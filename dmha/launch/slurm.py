"""Slurm backend: the whole JOB array is one ``sbatch --array`` job (Kaldi's slurm.pl idea).

How it works, and why:

* Each job's self-logging script (:func:`dmha.launch.job.job_script`, the same one the local backend
  runs, so logs look the same) is written to ``<log dir>/q/<name>.<i>.sh``; one batch script runs the
  script of ``$SLURM_ARRAY_TASK_ID`` and then writes that task's exit code to ``q/<name>.<i>.status``.
  Status files are the source of truth because accounting (``sacct``) is often off; they are removed
  before submission so an old run never passes for a new one.
* ``--max-parallel N`` becomes the array throttle ``--array=1-N%K``; resources (GPUs, CPUs, memory,
  time, nodes) come from the launch options and the site's config (:mod:`dmha.launch.slurm_config`).
* Waiting polls the status files (cheap, every half second) and ``squeue`` (every ``poll_interval``
  seconds). A task that left the queue without a status file (time limit, out of memory, node
  failure, ``scancel``) is failed with what ``scontrol show job`` still knows (state and exit code),
  and that is written at the end of its log, next to Slurm's own output file ``q/<name>.<i>.out``.
* Ctrl-C / SIGTERM of the launcher cancels the array with ``scancel`` and waits until it has left the
  queue, so nothing keeps running behind the user's back.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dmha.common.errors import UserError
from dmha.launch.backend import Backend
from dmha.launch.job import Job, job_script
from dmha.launch.resources import Resources
from dmha.launch.slurm_config import SlurmConfig, load_slurm_config

#: Seconds between looks at the status files.
STATUS_POLL_S = 0.5
#: After the array left the queue, how long to wait for status files to appear (network file systems
#: may show a file written on another node a little later).
STATUS_GRACE_S = 10.0
#: Give up (and say how to cancel) when squeue has been failing for this long.
QUERY_FAIL_LIMIT_S = 600.0
#: After scancel, how long to wait for the array to leave the queue.
CANCEL_WAIT_S = 60.0
#: When nothing of the array runs, say why (squeue's reason) after this long, and again this often.
PENDING_NOTE_S = 300.0

_TASK_RE = re.compile(r"\bArrayTaskId=(\d+)\b")
_STATE_RE = re.compile(r"\bJobState=(\S+)")
_EXIT_RE = re.compile(r"\bExitCode=(\d+):(\d+)")


def array_spec(indices: Sequence[int]) -> str:
    """Slurm's ``--array`` list for these indices: consecutive runs become ranges (1-4,7,9-10)."""
    idx = sorted(set(indices))
    parts: list[str] = []
    start = prev = idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def queue_name(jobs: Sequence[Job]) -> str:
    """A name for the array's files and the Slurm job: the first log's name without index and .log."""
    first = jobs[0]
    stem = Path(first.log).name
    stem = stem[:-4] if stem.endswith(".log") else stem
    if len(jobs) > 1:
        stem = re.sub(rf"[._-]?{first.index}$", "", stem) or stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "job"


def sbatch_command(jobs: Sequence[Job], res: Resources, cfg: SlurmConfig, max_parallel: int | None,
                   qdir: Path, name: str, script: Path) -> list[str]:
    """The sbatch command line (pure: tested without Slurm)."""
    throttle = max_parallel or cfg.max_parallel
    array = array_spec([j.index for j in jobs]) + (f"%{throttle}" if throttle else "")
    cmd = ["sbatch", "--parsable", f"--job-name={name}", f"--array={array}",
           f"--output={qdir / name}.%a.out", f"--chdir={os.getcwd()}", "--export=ALL",
           f"--nodes={res.nodes}", "--ntasks-per-node=1", f"--cpus-per-task={res.num_threads}"]
    partition = (cfg.gpu_partition or cfg.partition) if res.gpu else cfg.partition
    if partition:
        cmd.append(f"--partition={partition}")
    if res.time or cfg.time:
        cmd.append(f"--time={res.time or cfg.time}")
    if res.mem or cfg.mem:
        cmd.append(f"--mem={res.mem or cfg.mem}")
    if res.gpu:
        cmd += shlex.split(cfg.gpu_option.format(gpu=res.gpu)) + list(cfg.gpu_sbatch_args)
    cmd += list(cfg.sbatch_args) + list(res.sbatch_args)
    cmd.append(str(script))
    return cmd


def batch_script(qdir: Path, name: str) -> str:
    """Runs the task's job script, then records its exit code (written atomically: tmp + rename).

    A TERM from Slurm (scancel, time limit) reaches the whole step; the trap keeps this wrapper alive
    until the job script has written its log footer, so the status says 143 rather than nothing.
    """
    q = shlex.quote(str(qdir / name))
    return f"""#!/usr/bin/env bash
# dmha launcher (Slurm backend): task $SLURM_ARRAY_TASK_ID runs {q}.<task>.sh
trap 'echo "dmha: task got SIGTERM" >&2' TERM
i=$SLURM_ARRAY_TASK_ID
bash {q}.$i.sh
rc=$?
echo $rc > {q}.$i.status.tmp && mv -f {q}.$i.status.tmp {q}.$i.status
exit $rc
"""


class SlurmBackend(Backend):
    def __init__(self, max_parallel: int | None = None, resources: Resources | None = None) -> None:
        super().__init__(max_parallel, resources)
        self.config = load_slurm_config(self.resources.slurm_config)
        self.job_id: str | None = None
        self._next_note = 0.0
        self._jobs: list[Job] = []
        self._qdir = Path()
        self._name = ""

    # --- submission ---
    def submit(self, jobs: Sequence[Job]) -> None:
        self._jobs = list(jobs)
        self._name = queue_name(jobs)
        self._qdir = Path(jobs[0].log).resolve().parent / "q"
        self._qdir.mkdir(parents=True, exist_ok=True)
        n = len(jobs)
        for j in jobs:
            for stale in (self._status(j.index), self._out(j.index)):
                stale.unlink(missing_ok=True)
            abs_job = Job(j.index, j.command, str(Path(j.log).resolve()))
            self._path(f"{j.index}.sh").write_text(job_script(abs_job, f"job {j.index} of {n}, Slurm"))
        script = self._path("sh")
        script.write_text(batch_script(self._qdir, self._name))
        cmd = sbatch_command(jobs, self.resources, self.config, self.max_parallel, self._qdir, self._name,
                             script)
        proc = _run(cmd)
        if proc.returncode != 0:
            msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise UserError(f"sbatch refused the {self._name} jobs: {msg[-1] if msg else 'no message'} "
                            f"(command: {shlex.join(cmd)}; settings from {self.config.source})")
        self.job_id = proc.stdout.strip().split(";")[0]
        if not self.job_id.isdigit():
            raise UserError(f"sbatch printed {proc.stdout.strip()!r}, not a job id "
                            f"(command: {shlex.join(cmd)})")
        array = next(a for a in cmd if a.startswith("--array="))
        logs = jobs[0].log + (f" .. {jobs[-1].log}" if n > 1 else "")
        print(f"launch: Slurm job {self.job_id} ({n} task{'s' * (n > 1)}, {array}): logs {logs}",
              file=sys.stderr, flush=True)

    # --- waiting ---
    def wait(self) -> dict[int, int]:
        assert self.job_id is not None, "submit() first"
        codes: dict[int, int] = {}
        next_query = time.monotonic() + min(self.config.poll_interval, 2.0)
        failing_since: float | None = None
        self._next_note = time.monotonic() + PENDING_NOTE_S
        while True:
            codes.update(self._read_statuses(codes))
            if len(codes) == len(self._jobs):
                return codes
            if time.monotonic() >= next_query:
                next_query = time.monotonic() + self.config.poll_interval
                alive, err = self._in_queue()
                if err is not None:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > QUERY_FAIL_LIMIT_S:
                        raise UserError(f"cannot ask Slurm about job {self.job_id} ({err}) for "
                                        f"{QUERY_FAIL_LIMIT_S:.0f} s; its tasks may still run: check with "
                                        f"squeue -j {self.job_id}, cancel with scancel {self.job_id}")
                elif not alive:
                    return self._finish_without_queue(codes)
                else:
                    failing_since = None
            time.sleep(STATUS_POLL_S)

    def _finish_without_queue(self, codes: dict[int, int]) -> dict[int, int]:
        """The array left the queue: take the status files, else what ``scontrol`` says about a task.

        A task that Slurm reports COMPLETED (or no longer knows) may have a status file that a network
        file system shows late, so those get a grace period before Slurm's word is taken.
        """
        codes.update(self._read_statuses(codes))
        missing = [j for j in self._jobs if j.index not in codes]
        if not missing:
            return codes
        info = self._task_info()
        if any(info.get(j.index, ("", 0, True))[2] for j in missing):
            deadline = time.monotonic() + STATUS_GRACE_S
            while time.monotonic() < deadline:
                codes.update(self._read_statuses(codes))
                if all(j.index in codes or not info.get(j.index, ("", 0, True))[2] for j in missing):
                    break
                time.sleep(STATUS_POLL_S)
            codes.update(self._read_statuses(codes))
        for j in missing:
            if j.index in codes:
                continue
            state, code, _ = info.get(j.index, ("unknown (no longer known to slurmctld)", 1, True))
            codes[j.index] = code
            self._note_in_log(j, state, code)
        return codes

    def _read_statuses(self, known: dict[int, int]) -> dict[int, int]:
        found = {}
        for j in self._jobs:
            if j.index in known:
                continue
            try:
                text = self._status(j.index).read_text().strip()
            except FileNotFoundError:
                continue
            found[j.index] = int(text) if text.lstrip("-").isdigit() else 1
        return found

    def _in_queue(self) -> tuple[bool, str | None]:
        """(whether any task is still pending/running, error text if squeue failed)."""
        proc = _run(["squeue", "--noheader", f"--jobs={self.job_id}", "--format=%T|%r"])
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if "Invalid job id" in err:  # already purged from slurmctld's memory: finished
                return False, None
            return True, err or f"squeue exit {proc.returncode}"
        rows = [line.split("|", 1) for line in proc.stdout.splitlines() if line.strip()]
        self._note_pending(rows)
        return bool(rows), None

    def _note_pending(self, rows: list[list[str]]) -> None:
        """Nothing of the array runs for a long time (wrong partition, limits, busy cluster): say why."""
        if not rows or any(r[0] != "PENDING" for r in rows):
            self._next_note = time.monotonic() + PENDING_NOTE_S
            return
        if time.monotonic() >= self._next_note:
            self._next_note = time.monotonic() + PENDING_NOTE_S
            reasons = sorted({r[1] for r in rows if len(r) > 1})
            print(f"launch: Slurm job {self.job_id} is still pending (reason: {', '.join(reasons)}); "
                  f"check with squeue -j {self.job_id} or cancel with Ctrl-C", file=sys.stderr, flush=True)

    def _task_info(self) -> dict[int, tuple[str, int, bool]]:
        """{task: (state text, exit code, ended normally)} from ``scontrol show job`` (slurmctld keeps
        finished jobs for MinJobAge, 300 s by default)."""
        proc = _run(["scontrol", "--oneliner", "show", "job", str(self.job_id)])
        info = {}
        for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
            task, state, ex = _TASK_RE.search(line), _STATE_RE.search(line), _EXIT_RE.search(line)
            if not task or not state:
                continue
            rc, sig = (int(ex.group(1)), int(ex.group(2))) if ex else (1, 0)
            completed = state.group(1) == "COMPLETED"
            code = rc if rc else (128 + sig if sig else (0 if completed else 1))
            info[int(task.group(1))] = (f"{state.group(1)} (ExitCode {rc}:{sig})", code, completed)
        return info

    def _note_in_log(self, job: Job, state: str, code: int) -> None:
        """End the job's log with what Slurm says, so the log named in the error explains the failure."""
        log = Path(job.log)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as f:
                f.write(f"# Slurm: task {self.job_id}_{job.index} ended {state} without writing its exit "
                        f"status; Slurm's output: {self._out(job.index)}\n")
                f.write(f"# Ended (code {code}) at {time.strftime('%c')} (per Slurm)\n")
        except OSError:
            pass

    # --- cancelling ---
    def cancel(self) -> None:
        if self.job_id is None:
            return
        _run(["scancel", str(self.job_id)])
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            alive, err = self._in_queue()
            if not alive and err is None:
                return
            time.sleep(0.5)
        print(f"launch: Slurm job {self.job_id} is still in the queue {CANCEL_WAIT_S:.0f} s after scancel; "
              f"check with squeue -j {self.job_id}", file=sys.stderr)

    # --- file names ---
    def _path(self, suffix: str) -> Path:
        return self._qdir / f"{self._name}.{suffix}"

    def _status(self, index: int) -> Path:
        return self._path(f"{index}.status")

    def _out(self, index: int) -> Path:
        return self._path(f"{index}.out")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run a Slurm client command; a missing command is a clear error (Slurm is not installed here)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    except FileNotFoundError:
        raise UserError(f"'{cmd[0]}' not found: --backend slurm needs the Slurm client commands "
                        "(sbatch, squeue, scancel, scontrol) on PATH") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"{cmd[0]} timed out after 120 s")
