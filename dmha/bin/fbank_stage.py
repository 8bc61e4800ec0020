"""Bookkeeping of steps/make_fbank.sh (see dmha.features.stage): before and after the feature jobs.

  fbank_stage prepare [--config Y] --nj N --force true|false <data-dir> <ark-dir>
      exit 0: run the jobs (stale outputs removed); exit 10: feats.scp complete and up to date, skip.
  fbank_stage combine [--config Y] --nj N --max-bad-frac F <data-dir> <ark-dir>
      merge the job outputs into <data-dir>/feats.scp and utt2num_frames; record and drop bad audio.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.common.errors import UserError

SKIP = 10


def _bool(v: str) -> bool:
    if v not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")
    return v == "true"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fbank_stage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("prepare", "combine"):
        s = sub.add_parser(name)
        s.add_argument("--config", help="feature config YAML (features: section); default: the paper's")
        s.add_argument("--nj", type=int, required=True)
        s.add_argument("--storage", default="float32", help="float32 (default), cm2 or cm3")
        if name == "prepare":
            s.add_argument("--force", type=_bool, default=False)
        else:
            s.add_argument("--max-bad-frac", type=float, default=0.05)
        s.add_argument("data_dir")
        s.add_argument("ark_dir")
    a = p.parse_args(argv)

    from dmha.features import stage as st

    if a.nj < 1:
        raise UserError(f"--nj must be >= 1, got {a.nj}")
    cfg = st.load_fbank_config(a.config)
    if a.cmd == "prepare":
        return 0 if st.prepare(a.data_dir, a.ark_dir, cfg, a.nj, a.force, a.storage) else SKIP
    if not 0 <= a.max_bad_frac <= 1:
        raise UserError(f"--max-bad-frac must be between 0 and 1, got {a.max_bad_frac}")
    for line in st.combine(a.data_dir, a.ark_dir, cfg, a.nj, a.max_bad_frac, a.storage):
        print(f"make_fbank.sh: {a.data_dir}: {line}")
    return 0


if __name__ == "__main__":
    run_main(main)
