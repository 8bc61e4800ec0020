"""Average epoch models of a training run into one best.pt-format model (checkpoint averaging).

Reads <exp-dir>/models/epoch_<N>.pt (written during training when train.keep_epoch_models > 0) and
writes <exp-dir>/avg_<select><num>.pt (or --output): the mean of the weights and BatchNorm statistics
of the --num latest epochs (--select last) or of the --num epochs with the lowest validation EER
(--select best); see dmha.training.averaging for how integer counters are treated. The file has
best.pt's format, so extraction, compute_threshold and the API take it with --model / model=.
It is written under a temporary name and renamed: a killed run leaves no file that looks complete.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dmha.bin._cli import run_main

log = logging.getLogger("dmha.average_models")


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return n


def build_parser() -> argparse.ArgumentParser:
    from dmha.training.averaging import SELECTIONS

    p = argparse.ArgumentParser(prog="python -m dmha.bin.average_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=_positive, default=5, help="epoch models to average (default %(default)s)")
    p.add_argument("--select", choices=SELECTIONS, default="last",
                   help="last: the latest epochs; best: the lowest validation EERs (default %(default)s)")
    p.add_argument("--output", help="output file name in <exp-dir> (default avg_<select><num>.pt)")
    p.add_argument("exp_dir", help="trained experiment dir with models/epoch_<N>.pt")
    return p


def default_name(select: str, num: int) -> str:
    """``avg_last5.pt`` / ``avg_best3.pt``: the file run.sh and the docs refer to."""
    return f"avg_{select}{num}.pt"


def average_models(exp_dir: str | Path, num: int, select: str, output: str | None = None) -> dict:
    """Select, average and write; return what was done (path, epochs, their validation EERs)."""
    from dmha.common.errors import UserError
    from dmha.training.averaging import average_snapshots, select_snapshots
    from dmha.training.checkpoint import save_checkpoint

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"{exp_dir}: experiment dir not found")
    name = output or default_name(select, num)
    if Path(name).name != name:
        raise UserError(f"--output {name}: give a file name (it is written into {exp_dir})")
    snaps = select_snapshots(exp_dir, num, select)
    ckpt = average_snapshots(snaps, select)
    path = exp_dir / name
    save_checkpoint(ckpt, path)
    return {"path": str(path), "epochs": ckpt["averaged_epochs"], "val_eers": ckpt["averaged_val_eers"]}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = average_models(args.exp_dir, args.num, args.select, args.output)
    eers = ", ".join("-" if e is None else f"{e:.2f}%" for e in r["val_eers"])
    print(f"averaged epochs {', '.join(map(str, r['epochs']))} (validation EER {eers}) -> {r['path']}")
    return 0


if __name__ == "__main__":
    run_main(main)
