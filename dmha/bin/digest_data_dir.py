"""Print SHA-256 digests of a data dir's audio and features (compare corpora across machines/clones)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.data.digest import audio_digest, feature_digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="digest_data_dir.sh", description=__doc__)
    p.add_argument("--no-feats", action="store_true", help="digest the audio only")
    p.add_argument("data_dirs", nargs="+", help="data dirs (wav.scp; feats.scp when present)")
    a = p.parse_args(argv)
    for d in a.data_dirs:
        parts = [audio_digest(d)]
        if not a.no_feats and (Path(d) / "feats.scp").is_file():
            parts.append(feature_digest(d))
        for g in parts:
            print(f"{d} {g.what} {g.count} {g.sha256}")
    return 0


if __name__ == "__main__":
    run_main(main)
