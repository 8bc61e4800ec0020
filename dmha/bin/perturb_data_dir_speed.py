"""Speed-perturbed copies of a data dir (Kaldi's perturb_data_dir_speed.sh), as wav.scp pipes.

Thin CLI over :func:`dmha.corpus.augmented.plan_speed_perturbation`; its shell face is
``steps/perturb_data_dir_speed.sh``. See ``--help``.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.common.errors import UserError


def _factor(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"speed factor '{text}' is not a number (e.g. 0.9 or 1.1)") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmha.bin.perturb_data_dir_speed",
        description="Write copies of every utterance of <src-dir> played at other speeds to <dest-dir> "
                    "(0.9: slower and lower, 10%% longer). New speakers (default): ids sp0.9-<utt>, speakers "
                    "sp0.9-<spk>; --same-speakers: ids <utt>-sp0.9, speakers unchanged. wav.scp entries are "
                    "pipes of python -m dmha.bin.augment_wav (polyphase resampling); utt2dur is scaled. "
                    "Combine the result with the source dir (utils/combine_data.sh).")
    p.add_argument("--factors", default="0.9 1.1", help="speed factors, > 0 and != 1 (default '%(default)s')")
    p.add_argument("--same-speakers", action="store_true",
                   help="keep each copy's speaker (default: a new speaker per factor, as WeSpeaker)")
    p.add_argument("src_dir")
    p.add_argument("dest_dir")
    return p


def main(argv: list[str] | None = None) -> int:
    from dmha.corpus.augmented import load_source, plan_speed_perturbation, summary, write_copies
    from dmha.data.datadir import validate_data_dir

    a = build_parser().parse_args(argv)
    factors = [_factor(t) for t in a.factors.replace(",", " ").split()]
    src = load_source(a.src_dir)
    plan = plan_speed_perturbation(src, factors, new_speakers=not a.same_speakers)
    if not write_copies(a.dest_dir, src, plan):
        print(f"perturb_data_dir_speed: {a.dest_dir} is up to date ({len(plan)} copies); nothing to do")
        return 0
    problems = validate_data_dir(a.dest_dir, check_feats=False)
    if problems:
        raise UserError(f"{a.dest_dir} does not validate: {problems[0]}")
    print(f"perturb_data_dir_speed: wrote {a.dest_dir} ({len(plan)} copies: {summary(plan)}, "
          f"{'same' if a.same_speakers else 'new'} speakers)")
    return 0


if __name__ == "__main__":
    run_main(main)
