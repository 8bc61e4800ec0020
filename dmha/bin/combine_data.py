"""Combine data dirs into one (union); conflicting duplicate keys are an error."""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.data.datadir import combine_data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="combine_data.sh", description=__doc__)
    p.add_argument("dest")
    p.add_argument("srcs", nargs="+")
    a = p.parse_args(argv)
    dd = combine_data(a.dest, a.srcs)
    print(f"combine_data: wrote {a.dest} ({len(dd.utt2spk)} utterances, {len(dd.speakers)} speakers, "
          f"files: {', '.join(sorted(dd.files))})")
    return 0


if __name__ == "__main__":
    run_main(main)
