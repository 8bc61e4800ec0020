#!/usr/bin/env bash
# steps/train.sh — stage 3: train (or resume) a speaker model; one process, or DDP through torchrun.
set -euo pipefail

config=              # YAML config; default: <exp-dir>/config.yaml of the run being resumed
device=auto          # auto | cpu | cuda | cuda:N
nproc=1              # training processes on this node (one per GPU on GPU servers)
nodes=1              # number of nodes (run this script on each, or let --cmd launch it)
cmd=local            # local | slurm (job backend of utils/launch.sh)
ngpu=0               # --cmd slurm: GPUs per node to request (sets --nproc); default: --nproc if --device cuda*
override=            # dotted config overrides, e.g. "train.lr=1e-3 model.heads=8"
override_file=       # YAML of sections with keys to change (applied before --override), e.g. lmft.yaml
rdzv_endpoint=       # multi-node: host:port of the rendezvous (any node reachable by all)
rdzv_id=dmha         # multi-node: job id shared by all nodes of one run

help_message="Usage: $0 [options] <lists-dir> <exp-dir>
  Trains the model described by --config on the lists of stage 2 into <exp-dir>
  (config.yaml, ckpt.pt, best.pt, train.log, metrics.csv, training.png).
  Re-running on an exp dir with a checkpoint resumes exactly where it stopped; on a finished run it
  says so and exits 0.
Options:
  --config FILE            YAML config (default: <exp-dir>/config.yaml when resuming)
  --device DEV             auto | cpu | cuda | cuda:N (default $device)
  --nproc N                processes on this node; > 1 (or --nodes > 1) runs torchrun DDP
                           (gloo on CPU, NCCL on GPU) (default $nproc)
  --nodes M                nodes (default $nodes); needs --rdzv-endpoint unless --cmd slurm
  --cmd local|slurm        how to launch (default $cmd); slurm: one job over --nodes nodes, torchrun
                           under srun on each (steps/slurm_train.sh), log in <exp-dir>/log/train.log
  --ngpu N                 with --cmd slurm: GPUs per node to request; sets --nproc N (default $ngpu:
                           none, or --nproc GPUs when --device is cuda*)
  --override \"k=v ...\"     dotted overrides of existing config keys (type-checked)
  --override-file FILE     YAML of sections with the keys to change (e.g. egs/mini/conf/lmft.yaml),
                           applied before --override
  --rdzv-endpoint HOST:PORT  multi-node rendezvous (torchrun --rdzv-backend c10d)
  --rdzv-id ID             rendezvous id shared by the nodes of one run (default $rdzv_id)
train.batch_size is the effective batch of one optimizer step over all processes; it is split into
train.grad_accum micro-batches per process, so the same config means the same training at any scale.
Multi-node by hand: run the same command on every node, e.g. on 2 nodes with 4 GPUs each:
  $0 --nproc 4 --nodes 2 --rdzv-endpoint node1:29400 --config C data/train/lists exp/x
Examples:
  $0 --config egs/mini/conf/dmha.yaml data/mini_train/lists exp/mini_dmha
  $0 --nproc 2 --override \"train.lr=1e-3\" --config egs/mini/conf/dmha.yaml data/mini_train/lists exp/x
  $0 data/mini_train/lists exp/mini_dmha      # resume with the saved config"

. "$(dirname "$0")/../path.sh"
. "$DMHA_ROOT/utils/parse_options.sh"

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
lists=$1
exp=$2

args=(--device "$device")
[ -n "$config" ] && args+=(--config "$config")
[ -n "$override_file" ] && args+=(--override-file "$override_file")
[ -n "$override" ] && args+=(--override "$override")
args+=("$lists" "$exp")

if [ "$cmd" = slurm ]; then
  # One Slurm job over all nodes; steps/slurm_train.sh starts torchrun on each node under srun with a
  # c10d rendezvous on the job's first node (id = Slurm job id). Site settings: conf/slurm.yaml.
  [ "$ngpu" -gt 0 ] && nproc=$ngpu
  case "$device" in cuda*) [ "$ngpu" -gt 0 ] || ngpu=$nproc ;; esac
  run=(python -m dmha.bin.train "${args[@]}")
  if [ "$nproc" -gt 1 ] || [ "$nodes" -gt 1 ]; then
    run=("$DMHA_ROOT/steps/slurm_train.sh" --nproc "$nproc" -m dmha.bin.train "${args[@]}")
  fi
  mkdir -p "$exp/log"
  exec "$DMHA_ROOT/utils/launch.sh" --backend slurm --nodes "$nodes" --gpu "$ngpu" --num-threads "$nproc" \
    "$exp/log/train.log" "${run[@]}"
fi

if [ "$nproc" -gt 1 ] || [ "$nodes" -gt 1 ]; then
  if [ "$nodes" -gt 1 ]; then
    [ -n "$rdzv_endpoint" ] || { echo "$0: --nodes $nodes needs --rdzv-endpoint host:port" >&2; exit 1; }
    launcher=(torchrun --nnodes "$nodes" --nproc-per-node "$nproc" --rdzv-backend c10d
              --rdzv-endpoint "$rdzv_endpoint" --rdzv-id "$rdzv_id")
  else
    launcher=(torchrun --standalone --nnodes 1 --nproc-per-node "$nproc")
  fi
  run=("${launcher[@]}" -m dmha.bin.train "${args[@]}")
else
  run=(python -m dmha.bin.train "${args[@]}")
fi

mkdir -p "$exp/log"
if [ "$cmd" = local ]; then
  echo "$0: ${run[*]}" >&2
  "${run[@]}"
else
  utils/launch.sh --backend "$cmd" --max-parallel "$nodes" "JOB=1:$nodes" "$exp/log/train.JOB.log" "${run[@]}"
fi
