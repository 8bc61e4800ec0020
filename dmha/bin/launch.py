"""Run a JOB=1:N array of commands with per-job logs; exit 1 naming the failed jobs' logs.

  launch.sh [--backend local|slurm] [--max-parallel N] JOB=1:N <log-with-JOB> <command with JOB ...>

JOB is replaced by the job index in the log path and in every command word. One quoted command word
is a full shell command line (pipes, redirects, && work); several words are quoted one by one, except
words that are exactly a shell operator (|, >, >>, <, 2>&1, &&, ;) which stay operators. Commands run
under bash with pipefail. Each log starts with the command line and start time and ends with
'# Accounting: time=..' and '# Ended (code N) at ..'. Without JOB=..., one job runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from dmha.bin._cli import run_main
from dmha.launch import Interrupted, Resources, launch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="launch.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="local", help="local (processes on this machine) or slurm")
    p.add_argument("--max-parallel", type=int, default=0,
                   help="at most N jobs at once (0: all jobs of the array at once; default 0)")
    g = p.add_argument_group("job resources (Slurm: sbatch options; local: only --nodes 1)")
    g.add_argument("--gpu", type=int, default=0, help="GPUs per node for each job (default 0)")
    g.add_argument("--num-threads", type=int, default=1, help="CPUs per job (default 1)")
    g.add_argument("--nodes", type=int, default=1, help="nodes per job, one task each (default 1)")
    g.add_argument("--mem", default="", help="memory per node, e.g. 4G (default: the Slurm config's)")
    g.add_argument("--time", default="", help="time limit, e.g. 4:00:00 (default: the Slurm config's)")
    g.add_argument("--slurm-config", default="",
                   help="Slurm YAML config (default: $DMHA_SLURM_CONFIG, else conf/slurm.yaml if present)")
    g.add_argument("--sbatch-opts", default="", help="extra sbatch options for this launch, one string")
    p.add_argument("args", nargs=argparse.REMAINDER, help="[JOB=1:N] <log-with-JOB> <command...>")
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if len(args) < 2:
        p.error("need [JOB=1:N] <log-with-JOB> <command...>")
    try:
        res = Resources(gpu=a.gpu, num_threads=a.num_threads, nodes=a.nodes, mem=a.mem or None,
                        time=a.time or None, slurm_config=a.slurm_config or None,
                        sbatch_args=tuple(shlex.split(a.sbatch_opts)))
        launch(args, backend=a.backend, max_parallel=a.max_parallel or None, resources=res)
    except Interrupted as e:
        print(f"launch.sh: got {e}; killed the running jobs", file=sys.stderr)
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    run_main(main)
