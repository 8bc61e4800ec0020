"""Markdown table of the quality runs of bench/quality.sh: EER / minDCF per system, mean ± spread over seeds.

Each system was trained with several seeds into ``<exp-root>/<system>_s<seed>/`` and scored by
steps/score.sh into that dir's ``results`` (read with dmha.scoring.results, latest row per test set, no
score normalisation). Per test set and metric the table shows ``mean ± sd`` (sample standard
deviation over seeds; none for one seed) and the seeds' range. The peer model (Resemblyzer,
``<exp-root>/resemblyzer``, pre-trained, deterministic) has one run.

    python bench/quality_report.py --exp-root exp/quality --systems "stats dmha" --seeds "0 1 2" \\
        --sets "mini_test real_test" --peer resemblyzer [--bootstrap 1000 --data-root data]

With ``--bootstrap N`` a second table says, per test set, whether the system with the lowest mean EER
is significantly better than each other system: a paired two-level bootstrap over the training seeds
and the test speakers (:mod:`dmha.scoring.significance`; reads every run's ``scores/<set>.score`` and
``<data-root>/<set>/utt2spk``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

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


def _results(exp: Path, sets: list[str], backend: str = "none") -> dict[str, dict]:
    from dmha.scoring.results import latest_results, read_results

    rows = latest_results(read_results(exp / "results"))
    out = {r["set"]: r for r in rows if r["norm"] == "none" and _backend_of(r) == backend}
    missing = [s for s in sets if s not in out]
    if missing:
        raise UserError(f"{exp}/results: no result for {missing}; run bench/quality.sh again (it resumes)")
    return out


def _backend_of(row: dict) -> str:
    """'none' for plain cosine rows, else the back-end kind ('lda51' -> 'lda')."""
    return (row.get("backend") or "none").rstrip("0123456789")


def score_file(exp: Path, test_set: str, backend: str = "none") -> Path:
    """Where bench/quality.sh (like run.sh stage 5) writes a run's scores with this back-end."""
    return exp / "scores" / (f"{test_set}.score" if backend == "none" else f"{test_set}.{backend}.score")


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


def _best_val_eer(exp: Path) -> float | None:
    """Lowest validation EER (%) over the run's epochs (metrics.csv of the training loop), if any."""
    import csv

    f = exp / "metrics.csv"
    if not f.is_file():
        return None
    with open(f, encoding="utf-8") as fh:
        vals = [float(r["val_eer"]) for r in csv.DictReader(fh) if r.get("val_eer") not in (None, "")]
    return min(vals) if vals else None


def _seconds(exp: Path) -> float | None:
    f = exp / "quality_train_seconds"
    return float(f.read_text().strip()) if f.is_file() else None


def _speaker_indices(data_dir: Path, enroll: list[str], test: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from dmha.common.fileio import read_kv

    utt2spk = read_kv(data_dir / "utt2spk")
    missing = sorted({u for u in enroll + test if u not in utt2spk})
    if missing:
        raise UserError(f"{data_dir}/utt2spk: no speaker for {len(missing)} trial utterance(s), e.g. "
                        f"{missing[0]}; is --data-root the data of these runs?")
    index = {spk: i for i, spk in enumerate(sorted(set(utt2spk.values())))}
    return (np.array([index[utt2spk[u]] for u in enroll]), np.array([index[utt2spk[u]] for u in test]))


def significance_table(root: Path, data_root: Path, systems: list[str], seeds: list[str], sets: list[str],
                       draws: int, backend: str = "none") -> list[str]:
    """Markdown rows: per test set, the best system (lowest mean EER) against each other system."""
    from dmha.data.trials import read_score_file
    from dmha.scoring.significance import bootstrap_eers, compare, observed_eer

    lines = ["| test set | best system | vs | EER % best / other | difference (points) | 95% interval | "
             "P(best not better) | significant |", "|---|---|---|---|---|---|---|---|"]
    for test_set in sets:
        runs: dict[str, list[np.ndarray]] = {}
        ref = None
        for name in systems:
            runs[name] = []
            for seed in seeds:
                path = score_file(root / f"{name}_s{seed}", test_set, backend)
                trials, scores = read_score_file(path)
                if ref is None:
                    ref, ref_path = trials, path
                elif trials.enroll != ref.enroll or trials.test != ref.test:
                    raise UserError(f"{path}: not the trials of {ref_path} (another trial list?); "
                                    f"score every run on the same {test_set}")
                runs[name].append(scores)
        spk_a, spk_b = _speaker_indices(data_root / test_set, ref.enroll, ref.test)
        observed = {name: observed_eer(r, ref.labels) for name, r in runs.items()}
        boot = bootstrap_eers(runs, ref.labels, spk_a, spk_b, draws=draws)
        best = min(observed, key=observed.get)
        for other in systems:
            if other == best:
                continue
            c = compare(best, other, observed, boot)
            lines.append(f"| {test_set} | {best} | {other} | {c.eer_a:.2f} / {c.eer_b:.2f} | {c.diff:+.2f} | "
                         f"[{c.low:+.2f}, {c.high:+.2f}] | {c.p_not_better:.3f} | "
                         f"{'yes' if c.significant else 'no'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-root", required=True)
    p.add_argument("--systems", required=True, help="space-separated system names")
    p.add_argument("--seeds", required=True, help="space-separated seeds")
    p.add_argument("--sets", required=True, help="space-separated test sets")
    p.add_argument("--peer", default="", help="name of the peer system dir under --exp-root (optional)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="draws of the paired seed x speaker bootstrap (0: no significance table)")
    p.add_argument("--data-root", default="data", help="where the test sets' utt2spk are (for --bootstrap)")
    p.add_argument("--backend", default="none", choices=("none", "mean", "lda", "plda"),
                   help="report the systems' scores after this back-end (the peer's are plain cosine)")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {args.bootstrap}")

    root = Path(args.exp_root)
    sets, seeds = args.sets.split(), args.seeds.split()
    header = ["system", "model", "seeds", "best val EER %"]
    for s in sets:
        header += [f"{s} EER %", f"{s} minDCF(0.01)"]
    header.append("train s/run")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    entries = [(name, [root / f"{name}_s{seed}" for seed in seeds]) for name in args.systems.split()]
    if args.peer:
        entries.append((args.peer, [root / args.peer]))
    for name, exps in entries:
        res = [_results(e, sets, "none" if name == args.peer else args.backend) for e in exps]
        row = [name, _describe(exps[0]), str(len(exps)) if name != args.peer else "-",
               _cell([v for v in (_best_val_eer(e) for e in exps) if v is not None], ".2f")]
        for s in sets:
            row.append(_cell([r[s]["eer"] for r in res], ".2f"))
            row.append(_cell([r[s]["mindcf_0.01"] for r in res], ".3f"))
        secs = [t for t in (_seconds(e) for e in exps) if t is not None]
        row.append(f"{statistics.fmean(secs):.0f}" if secs else "-")
        lines.append("| " + " | ".join(row) + " |")
    trials = {s: res[0][s]["n_trials"] for s in sets}
    how = ("cosine" if args.backend == "none"
           else f"cosine after the {args.backend} back-end fitted on the run's training embeddings")
    print("\n".join(lines))
    print("\ntrials: " + ", ".join(f"{s} {n:,}" for s, n in trials.items()) +
          "; cells: mean ± sample sd (min..max) over seeds; EER and minDCF(P_target = 0.01, normalised) "
          f"from steps/score.sh ({how}; the peer: plain cosine; no score normalisation); best val EER: "
          "the lowest validation EER of the run's epochs (the model that was scored, selected on the "
          "validation set only)")
    names = args.systems.split()
    if args.bootstrap and len(names) > 1:
        print(f"\nSignificance: paired bootstrap over seeds and test speakers ({args.bootstrap} draws; each "
              "draw resamples the seeds and the speakers, the same for every system; interval: 2.5-97.5 "
              "percentiles of the EER difference best - other; significant = the interval excludes 0)\n")
        print("\n".join(significance_table(root, Path(args.data_root), names, seeds, sets, args.bootstrap,
                                            args.backend)))
    return 0


if __name__ == "__main__":
    from dmha.bin._cli import run_main

    run_main(main)
