"""Convert utt2spk lines to spk2utt lines (files given, or stdin) on stdout, keeping input order."""

from __future__ import annotations

import argparse
import fileinput
import sys

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.data.datadir import utt2spk_to_spk2utt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="utt2spk_to_spk2utt.sh", description=__doc__)
    p.add_argument("files", nargs="*", help="utt2spk files (default: stdin)")
    a = p.parse_args(argv)
    pairs = []
    with fileinput.input(a.files or ["-"], encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UserError(f"{f.filename()}:{f.filelineno()}: expected 'utt spk', got {line.strip()!r}")
            pairs.append((parts[0], parts[1]))
    for spk, utts in utt2spk_to_spk2utt(pairs).items():
        sys.stdout.write(f"{spk} {' '.join(utts)}\n")
    return 0


if __name__ == "__main__":
    run_main(main)
