"""Write a subset of a data dir: by utterance list, speaker list, first N or random N utterances."""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.data.datadir import subset_data_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="subset_data_dir.sh", description=__doc__)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--utt-list", help="file whose first column lists the utterances to keep")
    g.add_argument("--spk-list", help="file whose first column lists the speakers to keep")
    g.add_argument("--first", type=int, help="the first N utterances (C order)")
    g.add_argument("--random", type=int, help="N utterances drawn at random (see --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    p.add_argument("src")
    p.add_argument("dest")
    a = p.parse_args(argv)
    dd = subset_data_dir(a.src, a.dest, utt_list=a.utt_list, spk_list=a.spk_list, first=a.first,
                         random_n=a.random, seed=a.seed)
    print(f"subset_data_dir: wrote {a.dest} ({len(dd.utt2spk)} utterances, {len(dd.speakers)} speakers)")
    return 0


if __name__ == "__main__":
    run_main(main)
