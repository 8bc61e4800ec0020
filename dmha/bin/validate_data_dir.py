"""Check a Kaldi data dir; print one line per problem; exit 1 if any (see dmha.data.datadir)."""

from __future__ import annotations

import argparse
import sys

from dmha.bin._cli import run_main
from dmha.data.datadir import validate_data_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="validate_data_dir.sh", description=__doc__)
    p.add_argument("--no-wav", action="store_true", help="do not require/check wav.scp")
    p.add_argument("--no-feats", action="store_true", help="do not check feats.scp/utt2num_frames")
    p.add_argument("--no-trials", action="store_true", help="do not check trials")
    p.add_argument("--max-per-kind", type=int, default=20,
                   help="messages shown per file and kind of problem, then a count (0: all; default 20)")
    p.add_argument("data_dir")
    a = p.parse_args(argv)
    problems = validate_data_dir(a.data_dir, check_wav=not a.no_wav, check_feats=not a.no_feats,
                                 check_trials=not a.no_trials, max_per_kind=a.max_per_kind)
    for msg in problems:
        print(f"validate_data_dir: {msg}", file=sys.stderr)
    if problems:
        print(f"validate_data_dir: {a.data_dir} is NOT valid; utils/fix_data_dir.sh {a.data_dir} "
              "repairs sorting, duplicates and missing entries", file=sys.stderr)
        return 1
    print(f"validate_data_dir: {a.data_dir} is OK")
    return 0


if __name__ == "__main__":
    run_main(main)
