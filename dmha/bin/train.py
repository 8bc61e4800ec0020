"""Stage 3 CLI: train a speaker model from prepared lists into an exp dir (resumes automatically).

Run alone for one process, or under torchrun for several (steps/train.sh chooses). Every process gets
the same arguments; rank 0 writes the exp dir.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.config import load_config, override_file_items

log = logging.getLogger("dmha.training.loop")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmha.bin.train",
        description="Train the speaker model (stage 3). Re-running on an exp dir with a checkpoint resumes "
                    "it exactly; on a finished run it says so and exits 0.",
        epilog="Writes <exp-dir>/{config.yaml, ckpt.pt, best.pt, train.log, metrics.csv, training.png, "
               "spk2int}.")
    p.add_argument("--config", help="YAML config (features/model/loss/train); default: <exp-dir>/config.yaml "
                                    "of the run being resumed")
    p.add_argument("--override-file", action="append", default=[],
                   help="YAML of sections with keys to change, applied before --override (repeatable), "
                        "e.g. egs/mini/conf/lmft.yaml")
    p.add_argument("--override", action="append", default=[],
                   help='dotted overrides of existing keys, e.g. "train.lr=1e-3 model.heads=8" (repeatable)')
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("lists_dir", help="lists dir written by stage 2 (steps/prepare_lists.sh)")
    p.add_argument("exp_dir", help="experiment dir (created; resumed if it holds a checkpoint)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exp_dir = Path(args.exp_dir)
    config = args.config or exp_dir / "config.yaml"
    if not Path(config).is_file():
        raise UserError(f"{config}: config not found; pass --config <yaml>")
    items = [i for f in args.override_file for i in override_file_items(f)]
    cfg = load_config(config, items + shlex.split(" ".join(args.override)))

    from dmha.training.distributed import finish, init_distributed
    from dmha.training.loop import train

    info = init_distributed(args.device)
    try:
        train(cfg, args.lists_dir, exp_dir, info)
    except UserError:
        if info.distributed:  # one rank's user error: say it and take the whole job down
            logging.getLogger("dmha").error("rank %d failed", info.rank)
        raise
    finish(info, 0)
    return 0


if __name__ == "__main__":
    run_main(main)
