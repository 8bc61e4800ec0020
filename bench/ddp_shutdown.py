"""Measure how reliably a 2-process gloo DDP job exits, per shutdown sequence (PITFALLS: gloo abort).

Usage: python bench/ddp_shutdown.py [--runs 20] [--variants dmha,destroy,barrier] [--train-sh]

Each run is a torchrun --standalone --nproc-per-node 2 job that trains a tiny DDP model for a few
steps and then ends with the chosen sequence:
  dmha     dmha.training.distributed.finish: barrier, flush, os._exit (what dmha.bin.train does)
  destroy  barrier + dist.destroy_process_group(), normal interpreter exit
  barrier  barrier only, normal interpreter exit
A run fails if the job's exit status is non-zero or stderr mentions "terminate called".
With --train-sh, the runs are full steps/train.sh --nproc 2 trainings on a tiny synthetic corpus.
Prints one line per variant: failures / runs and the mean wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r'''
import os, sys
import torch, torch.distributed as dist
from torch import nn
variant = sys.argv[1]
dist.init_process_group("gloo")
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for _ in range(20):
    opt.zero_grad()
    model(torch.randn(8, 16)).square().mean().backward()
    opt.step()
if variant == "dmha":
    from dmha.training.distributed import DistInfo, finish
    finish(DistInfo(dist.get_rank(), dist.get_world_size()), 0)
elif variant == "destroy":
    dist.barrier()
    dist.destroy_process_group()
elif variant == "barrier":
    dist.barrier()
'''


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _failed(proc: subprocess.CompletedProcess) -> bool:
    """A failed run; its exit status and the tail of its stderr are printed so causes can be told apart."""
    bad = proc.returncode != 0 or "terminate called" in proc.stderr
    if bad:
        tail = "\n    ".join(proc.stderr.strip().splitlines()[-15:])
        print(f"  failed run (exit {proc.returncode}):\n    {tail}", flush=True)
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--variants", default="dmha,destroy,barrier")
    p.add_argument("--train-sh", action="store_true", help="time full steps/train.sh --nproc 2 runs instead")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.train_sh:
            sys.path.insert(0, str(REPO / "tests"))
            from train_fixtures import make_corpus, tiny_config
            train_dir, val_dir = make_corpus(tmp)
            conf = tiny_config(tmp / "conf.yaml", max_epochs=1)
            subprocess.run([sys.executable, "-m", "dmha.bin.prepare_lists", "--config", str(conf),
                            str(train_dir), str(val_dir), str(tmp / "lists")], check=True, env=_env(),
                           capture_output=True)
            fails, t0 = 0, time.time()
            for i in range(args.runs):
                cmd = ["bash", str(REPO / "steps/train.sh"), "--nproc", "2", "--device", "cpu",
                       "--config", str(conf), str(tmp / "lists"), str(tmp / f"exp{i}")]
                proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
                fails += _failed(proc)
            per_run = (time.time() - t0) / args.runs
            print(f"train.sh --nproc 2: {fails}/{args.runs} failed, {per_run:.1f} s/run")
            return
        worker = tmp / "worker.py"
        worker.write_text(WORKER)
        for variant in args.variants.split(","):
            fails, t0 = 0, time.time()
            for _ in range(args.runs):
                proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node", "2", str(worker), variant],
                                      env=_env(), capture_output=True, text=True)
                fails += _failed(proc)
            print(f"{variant}: {fails}/{args.runs} failed, {(time.time() - t0) / args.runs:.1f} s/run",
                  flush=True)


if __name__ == "__main__":
    main()
