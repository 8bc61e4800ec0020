"""Write the CMN side tables (dmha.features.cmn_table) for the arks of an existing feats.scp.

  python -m dmha.bin.cmn_stats <feats.scp> [<feats.scp> ...]

The feature stage writes these tables itself; this tool is for arks written before it did (or by
another tool), and for rewriting a table that training reported as not matching its archive. Every
matrix is read once. Arks must hold float32 (FM) or Kaldi CM2/CM3 matrices; with Kaldi's default
compression (CM) crops cannot be read partially and training keeps whole-utterance reads.
"""

from __future__ import annotations

import argparse
import logging

from dmha.bin._cli import run_main

log = logging.getLogger("cmn_stats")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.cmn_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("feats_scp", nargs="+", help="feats.scp file(s) (utt ark:offset)")
    a = p.parse_args(argv)

    from dmha.common.errors import UserError
    from dmha.common.fileio import read_kv
    from dmha.features.arkrows import split_entry
    from dmha.features.cmn_table import write_table

    by_ark: dict[str, dict[str, int]] = {}
    for scp in a.feats_scp:
        try:
            entries = read_kv(scp)
        except OSError as e:
            raise UserError(f"{scp}: cannot read ({e.strerror})") from None
        for utt, entry in entries.items():
            path, off = split_entry(entry)
            by_ark.setdefault(path, {})[utt] = off
    for ark, entries in sorted(by_ark.items()):
        out = write_table(ark, sorted(entries.items(), key=lambda kv: kv[1]))
        log.info("%s: %d utterances", out, len(entries))
    log.info("wrote %d side tables", len(by_ark))
    return 0


if __name__ == "__main__":
    run_main(main)
