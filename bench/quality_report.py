"""Markdown table of the quality runs of bench/quality.sh: EER / minDCF per system, mean ± spread over seeds.

Each system was trained with several seeds into ``<exp-root>/<system>_s<seed>/`` and scored by
steps/score.sh into that dir's ``results`` (read with dmha.scoring.results, latest row per test set, no
score normalisation). Per test set and metric the table shows ``mean ± sd`` (sample standard
deviation over seeds; none for one seed) and the seeds' range. The peer model (Resemblyzer,
``<exp-root>/resemblyzer``, pre-trained, deterministic) has one run.

    python bench/quality_report.py --exp-root exp/quality --systems "stats dmha" --seeds "0 1 2" \\
        --sets "mini_test real_test" --peer resemblyzer
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.common.errors import UserError  # noqa: E402


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return format(mean, fmt)
    sd = statistics.stdev(values)
    return f"{mean:{fmt}} ± {sd:{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"


def _results(exp: Path, sets: list[str]) -> dict[str, dict]:
    from dmha.scoring.results import latest_results, read_results

    rows = latest_results(read_results(exp / "results"))
    out = {r["set"]: r for r in rows if r["norm"] == "none"}
    missing = [s for s in sets if s not in out]
    if missing:
        raise UserError(f"{exp}/results: no result for {missing}; run bench/quality.sh again (it resumes)")
    return out


def _describe(exp: Path) -> str:
    """'dmha K=8, dim 80' from the run's resolved config.yaml."""
    import yaml

    from dmha.models import ModelConfig, build_model

    cfg_path = exp / "config.yaml"
    if not cfg_path.is_file():
        return "pre-trained peer (GE2E LSTM), dim 256"
    with open(cfg_path, encoding="utf-8") as f:
        model_cfg = (yaml.safe_load(f) or {}).get("model", {})
    cfg = ModelConfig.from_dict(model_cfg)
    dim = build_model(cfg, 1).pooling.get_out_dim()
    heads = f" K={cfg.heads}" if cfg.pooling in ("mha", "dmha") else ""
    return f"{cfg.pooling}{heads}, channels {cfg.widths()}, pooled dim {dim}"


def _seconds(exp: Path) -> float | None:
    f = exp / "quality_train_seconds"
    return float(f.read_text().strip()) if f.is_file() else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-root", required=True)
    p.add_argument("--systems", required=True, help="space-separated system names")
    p.add_argument("--seeds", required=True, help="space-separated seeds")
    p.add_argument("--sets", required=True, help="space-separated test sets")
    p.add_argument("--peer", default="", help="name of the peer system dir under --exp-root (optional)")
    args = p.parse_args(argv)

    root = Path(args.exp_root)
    sets, seeds = args.sets.split(), args.seeds.split()
    header = ["system", "model", "seeds"]
    for s in sets:
        header += [f"{s} EER %", f"{s} minDCF(0.01)"]
    header.append("train s/run")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    entries = [(name, [root / f"{name}_s{seed}" for seed in seeds]) for name in args.systems.split()]
    if args.peer:
        entries.append((args.peer, [root / args.peer]))
    for name, exps in entries:
        res = [_results(e, sets) for e in exps]
        row = [name, _describe(exps[0]), str(len(exps)) if name != args.peer else "-"]
        for s in sets:
            row.append(_cell([r[s]["eer"] for r in res], ".2f"))
            row.append(_cell([r[s]["mindcf_0.01"] for r in res], ".3f"))
        secs = [t for t in (_seconds(e) for e in exps) if t is not None]
        row.append(f"{statistics.fmean(secs):.0f}" if secs else "-")
        lines.append("| " + " | ".join(row) + " |")
    trials = {s: res[0][s]["n_trials"] for s in sets}
    print("\n".join(lines))
    print("\ntrials: " + ", ".join(f"{s} {n:,}" for s, n in trials.items()) +
          "; cells: mean ± sample sd (min..max) over seeds; EER and minDCF(P_target = 0.01, normalised) "
          "from steps/score.sh (cosine, no score normalisation)")
    return 0


if __name__ == "__main__":
    from dmha.bin._cli import run_main

    run_main(main)
