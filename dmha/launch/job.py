"""Job arrays: the ``JOB=1:N`` spec, per-job command and log path, and the self-logging job script.

The job script is plain bash so that every backend (local processes now, Slurm later) produces the
same log format without any Python on the running side: the log starts with the command line and the
start time, then the job's stdout+stderr, and ends with Kaldi's ``# Accounting: time=...`` and
``# Ended (code N) at ...`` lines, so a finished log always says how the job ended.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from dmha.common.errors import UserError

_SPEC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")

#: Words that act as shell operators when the command is given as several words (Kaldi's ``\|`` style).
SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>>", "2>&1", ">&2", "&>", "|&"})


@dataclass(frozen=True)
class JobSpec:
    """``JOB=1:N``: the variable name and the inclusive index range (a single job has var None)."""

    var: str | None
    start: int
    end: int

    @property
    def ids(self) -> range:
        return range(self.start, self.end + 1)

    def __str__(self) -> str:
        return f"{self.var}={self.start}:{self.end}" if self.var else "single job"


def parse_job_spec(word: str) -> JobSpec | None:
    """Parse ``JOB=1:N`` or ``JOB=3``; None if ``word`` is not a job spec."""
    m = _SPEC_RE.match(word)
    if not m:
        return None
    start = int(m.group(2))
    end = int(m.group(3)) if m.group(3) is not None else start
    if end < start:
        raise UserError(f"job range {word!r} is empty: the end must be >= the start")
    return JobSpec(m.group(1), start, end)


@dataclass(frozen=True)
class Job:
    """One job of the array: its index, the shell command to run and its log file."""

    index: int
    command: str
    log: str


def build_command(words: list[str]) -> str:
    """Turn the command words into one bash command line.

    One word is taken as a complete shell command (pipes, redirects, ``&&`` inside the quotes work).
    Several words are arguments, each quoted so spaces survive, except words that are exactly a shell
    operator (``|``, ``>``, ``2>&1``, ...), which stay operators, as Kaldi's ``\\|`` does.
    """
    if not words:
        raise UserError("no command given to launch")
    if len(words) == 1:
        return words[0]
    return " ".join(w if w in SHELL_OPERATORS else shlex.quote(w) for w in words)


def make_jobs(spec: JobSpec | None, log: str, words: list[str]) -> list[Job]:
    """Expand the array: the job variable is replaced in the log path and in every command word."""
    if spec is None or spec.var is None:
        return [Job(1, build_command(words), log)]
    if spec.end > spec.start and spec.var not in log:
        raise UserError(f"log path {log!r} does not contain {spec.var}: all {len(spec.ids)} jobs would "
                        f"write the same log; use e.g. {log}.{spec.var}")
    jobs = []
    for i in spec.ids:
        sub = [w.replace(spec.var, str(i)) for w in words]
        jobs.append(Job(i, build_command(sub), log.replace(spec.var, str(i))))
    return jobs


def job_script(job: Job, label: str = "") -> str:
    """A bash script that runs ``job.command`` with ``pipefail`` and writes the whole log itself.

    The command runs in a child ``bash -o pipefail -c`` (a syntax error in it is logged as a failure
    rather than breaking the wrapper); a TERM/INT/HUP sent to the job's process group is recorded in
    the footer once the command has exited. The script exits with the command's exit code.
    """
    log = shlex.quote(job.log)
    what = f" ({label})" if label else ""
    return f"""set +e
trap 'killed=1' TERM INT HUP
killed=0
mkdir -p "$(dirname {log})" || exit 1
{{ printf '# %s\\n' {shlex.quote(job.command)}
  printf '# Started at %s on %s{what}\\n' "$(date)" "$(hostname)"; }} > {log} || exit 1
start=$(date +%s)
bash -o pipefail -c {shlex.quote(job.command)} < /dev/null >> {log} 2>&1
rc=$?
end=$(date +%s)
note=
[ "$killed" = 1 ] && note=' (killed by a signal)'
{{ echo "# Accounting: time=$((end - start)) threads=1"
  echo "# Ended (code $rc) at $(date)$note"; }} >> {log}
exit $rc
"""
