#!/usr/bin/env bash
# launch.sh — run a JOB=1:N array of commands with per-job logs (Kaldi's run.pl/slurm.pl idea).
set -euo pipefail
backend=local
max_parallel=0
gpu=0
num_threads=1
nodes=1
mem=
time=
slurm_config=
sbatch_opts=
help_message="Usage: $0 [--backend local|slurm] [--max-parallel N] [JOB=1:N] <log-with-JOB> <command...>
  Runs the jobs JOB=1..N; JOB is replaced by the job index in the log path and in every command word.
  --backend B        local (processes on this machine; default) or slurm
  --max-parallel N   at most N jobs at once (0: all at once; default $max_parallel)
  Job resources (slurm: sbatch options; local: ignored except --nodes, which must be 1):
  --gpu N            GPUs per node for each job (default $gpu)
  --num-threads N    CPUs per job (default $num_threads)
  --nodes N          nodes per job, one task per node (default $nodes)
  --mem M            memory per node, e.g. 4G (default: from the Slurm config)
  --time T           time limit, e.g. 4:00:00 (default: from the Slurm config)
  --slurm-config F   Slurm YAML config (default: \$DMHA_SLURM_CONFIG, else conf/slurm.yaml if present);
                     (partition, gpu_partition, time, mem, sbatch_args ...: dmha/launch/slurm_config.py)
  --sbatch-opts S    extra sbatch options for this launch (one quoted string)
  One quoted command word is a full shell command line (pipes, redirects work); several words are
  quoted one by one, except a word that is exactly a shell operator (|, >, 2>&1, ...).
  Commands run under bash -o pipefail. Each log starts with the command line and start time and ends
  with '# Accounting: time=...' and '# Ended (code N) at ...'. Exit 1 if any job failed, naming the
  failed jobs and their logs. Ctrl-C or kill of the launcher kills the running jobs.
Examples:
  $0 --max-parallel 2 JOB=1:4 exp/log/fbank.JOB.log python -m dmha.bin.x --in data/train/split4/JOB
  $0 JOB=1:4 exp/log/gz.JOB.log 'my-tool data/split4/JOB | gzip > out.JOB.gz'"
. "$(dirname "$0")/../path.sh"
. "$(dirname "$0")/parse_options.sh"
if [ $# -lt 2 ]; then printf '%s\n' "$help_message" >&2; exit 1; fi
exec python -m dmha.bin.launch --backend "$backend" --max-parallel "$max_parallel" --gpu "$gpu" \
  --num-threads "$num_threads" --nodes "$nodes" --mem="$mem" --time="$time" --slurm-config="$slurm_config" \
  --sbatch-opts="$sbatch_opts" -- "$@"
