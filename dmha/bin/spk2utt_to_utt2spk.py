"""Convert spk2utt lines to utt2spk lines (files given, or stdin) on stdout, keeping input order."""

from __future__ import annotations

import argparse
import fileinput
import sys

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.data.datadir import spk2utt_to_utt2spk


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spk2utt_to_utt2spk.sh", description=__doc__)
    p.add_argument("files", nargs="*", help="spk2utt files (default: stdin)")
    a = p.parse_args(argv)
    pairs = []
    with fileinput.input(a.files or ["-"], encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise UserError(f"{f.filename()}:{f.filelineno()}: speaker '{parts[0]}' has no utterances")
            pairs.append((parts[0], parts[1:]))
    for utt, spk in spk2utt_to_utt2spk(pairs).items():
        sys.stdout.write(f"{utt} {spk}\n")
    return 0


if __name__ == "__main__":
    run_main(main)
