"""One DET plot with several systems' score files (one curve each, EER marked).

Why: the quality report compares poolings and the peer model on the same trials; their DET curves
belong in one figure. Score files are those of steps/score.sh (``enroll test score target|nontarget``);
the curves come from dmha.scoring.metrics.det_curve and the EER from dmha.scoring.metrics.compute_eer
(the code the recipe's results use), the figure from dmha.scoring.det_plot.plot_det.

    python bench/det_all.py --title mini_test --out bench/results/det_mini_test.png \\
        dmha=exp/quality/dmha_s0/scores/mini_test.score stats=exp/quality/stats_s0/scores/mini_test.score
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.common.errors import UserError  # noqa: E402
from dmha.data.trials import read_score_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("curves", nargs="+", metavar="LABEL=SCORE_FILE", help="one curve per system")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--title", default="", help="figure title (e.g. the test set)")
    args = p.parse_args(argv)

    from dmha.scoring.det_plot import plot_det
    from dmha.scoring.metrics import compute_eer, det_curve

    curves, eers = [], []
    for item in args.curves:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise UserError(f"bad curve argument {item!r}; expected LABEL=SCORE_FILE")
        trials, scores = read_score_file(Path(path))
        curves.append((label, det_curve(scores, trials.labels)))
        eers.append(compute_eer(scores, trials.labels)[0])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot_det(curves, args.out, title=args.title, eers=eers)
    print(f"det_all: {len(curves)} curves -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from dmha.bin._cli import run_main

    run_main(main)
