"""Copy a data dir under new utterance/speaker ids (prefix/suffix), e.g. to oversample part of it."""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.data.datadir import copy_data_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="copy_data_dir.sh", description=__doc__)
    p.add_argument("--utt-prefix", default="", help="put before every utterance id (needs --spk-prefix)")
    p.add_argument("--utt-suffix", default="", help="put after every utterance id")
    p.add_argument("--spk-prefix", default="", help="put before every speaker id")
    p.add_argument("--spk-suffix", default="", help="put after every speaker id")
    p.add_argument("src")
    p.add_argument("dest")
    a = p.parse_args(argv)
    dd = copy_data_dir(a.src, a.dest, utt_prefix=a.utt_prefix, utt_suffix=a.utt_suffix,
                       spk_prefix=a.spk_prefix, spk_suffix=a.spk_suffix)
    print(f"copy_data_dir: wrote {a.dest} ({len(dd.utt2spk)} utterances, {len(dd.speakers)} speakers)")
    return 0


if __name__ == "__main__":
    run_main(main)
