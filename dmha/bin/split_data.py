"""Split a data dir into <dir>/split<N>/{1..N}/ (by speaker, or by utterance with --per-utt).

Each part is a complete data dir (utt2spk, spk2utt, wav.scp and feats.scp/utt2num_frames when
present); nothing is lost. An up-to-date split (same mode, same source files) is reused.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.data.datadir import split_data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="split_data.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-utt", action="store_true", help="split by utterance instead of by speaker")
    p.add_argument("data_dir")
    p.add_argument("num_parts", type=int)
    a = p.parse_args(argv)
    split_data(a.data_dir, a.num_parts, per_utt=a.per_utt)
    return 0


if __name__ == "__main__":
    run_main(main)
