#!/usr/bin/env bash
# steps/slurm_train.sh — inside a Slurm job: one torchrun agent per task (normally one per node) with a
# c10d rendezvous on the job's first node. steps/train.sh --cmd slurm submits a job that runs this.
set -euo pipefail

nproc=1          # processes (ranks) per agent, i.e. per node: one per GPU on GPU nodes
port=0           # rendezvous port on the first node (0: 29400 + job id mod 1000)

help_message="Usage: $0 [--nproc N] [--port P] [--] <torchrun program and arguments...>
  Run inside a Slurm allocation (sbatch/salloc; steps/train.sh --cmd slurm submits one for you).
  Starts 'torchrun --nnodes \$SLURM_NTASKS --nproc-per-node N --rdzv-backend c10d
  --rdzv-endpoint <first node>:<port> --rdzv-id \$SLURM_JOB_ID <program...>' once per Slurm task with
  srun (--kill-on-bad-exit: one failing agent ends the job). The first node comes from
  'scontrol show hostnames \$SLURM_JOB_NODELIST'. Output lines are prefixed with the task number.
Options:
  --nproc N   ranks per agent (default $nproc)
  --port P    rendezvous TCP port on the first node (default: 29400 + job id mod 1000)
Examples:
  sbatch --nodes 2 --ntasks-per-node 1 --gres gpu:4 --cpus-per-task 16 \\
    --wrap '$0 --nproc 4 -m dmha.bin.train --config C data/train/lists exp/x'
  $0 --nproc 2 tests/ddp_train_worker.py conf.yaml lists exp hashes"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -lt 1 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
if [ -z "${SLURM_JOB_ID:-}" ] || [ -z "${SLURM_JOB_NODELIST:-}" ]; then
  echo "$0: not inside a Slurm job (no SLURM_JOB_ID/SLURM_JOB_NODELIST); submit it with sbatch, or use" \
       "steps/train.sh --cmd slurm" >&2
  exit 1
fi

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
[ -n "$head_node" ] || { echo "$0: scontrol show hostnames '$SLURM_JOB_NODELIST' gave no host" >&2; exit 1; }
[ "$port" -gt 0 ] || port=$((29400 + SLURM_JOB_ID % 1000))
ntasks=${SLURM_NTASKS:-${SLURM_JOB_NUM_NODES:-1}}

# Since Slurm 22.05 srun does not inherit --cpus-per-task from the batch job: pass it on.
srun_opts=(--ntasks "$ntasks" --kill-on-bad-exit=1 --label --export=ALL)
[ -n "${SLURM_CPUS_PER_TASK:-}" ] && srun_opts+=(--cpus-per-task "$SLURM_CPUS_PER_TASK")

echo "$0: job $SLURM_JOB_ID: $ntasks agent(s) x $nproc rank(s), rendezvous $head_node:$port" \
     "(nodes: $SLURM_JOB_NODELIST)" >&2
exec srun "${srun_opts[@]}" \
  torchrun --nnodes "$ntasks" --nproc-per-node "$nproc" --max-restarts 0 \
    --rdzv-backend c10d --rdzv-endpoint "$head_node:$port" --rdzv-id "$SLURM_JOB_ID" "$@"
