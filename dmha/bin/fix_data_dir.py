"""Repair a Kaldi data dir in place: sort, dedupe, keep the utterances present in every file.

Drops utterances with conflicting duplicate lines, malformed/invalid values, those listed in bad_utts
and those missing from any per-utterance file present; regenerates spk2utt; keeps the originals in
<dir>/.backup/. The trials file is never edited; trials naming dropped utterances are reported.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.data.datadir import fix_data_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fix_data_dir.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    a = p.parse_args(argv)
    report = fix_data_dir(a.data_dir)
    for line in report.lines():
        print(f"fix_data_dir: {a.data_dir}: {line}")
    return 0


if __name__ == "__main__":
    run_main(main)
