"""Print the final results table of an experiment: the latest EER/minDCF per (test set, norm).

Reads <results>.tsv written by steps/score.sh. With --reference (YAML ``<set>: {eer:, mindcf_0.01:}``,
e.g. the paper's figures for this configuration) the table gets reference columns beside ours. Without
it, the ``paper:`` section of the experiment's config.yaml (the results file's folder) is used when
present (the egs/voxceleb configs carry the paper's figures for their row).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.scoring.results import latest_results, read_reference, read_results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.summarize_results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="results file (its .tsv companion is read), e.g. exp/<name>/results")
    p.add_argument("--reference", help="YAML of reference figures per set, shown as extra columns")
    p.add_argument("--reference-name", default="paper", help="column label for --reference (default paper)")
    return p


def format_table(rows: list[dict], reference: dict | None = None, ref_name: str = "paper") -> str:
    """A markdown table: one row per (set, norm, back-end)."""
    calibrated = any(r.get("cllr") is not None for r in rows)
    header = ["set", "norm", "back-end", "EER (%)", "minDCF(0.01)", "minDCF(0.001)", "trials"]
    if calibrated:
        header += ["actDCF(0.01)", "Cllr", "min Cllr"]
    if reference is not None:
        header += [f"{ref_name} EER (%)", f"{ref_name} minDCF(0.01)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        trials = f"{r['n_trials']}" + (f" ({r['n_skipped']} skipped)" if r["n_skipped"] else "")
        cells = [r["set"], r["norm"], r.get("backend") or "cosine", f"{r['eer']:.2f}",
                 f"{r['mindcf_0.01']:.4f}", f"{r['mindcf_0.001']:.4f}", trials]
        if calibrated:
            cells += ["-" if r.get(k) is None else f"{r[k]:.4f}" for k in ("actdcf_0.01", "cllr", "min_cllr")]
        if reference is not None:
            ref = reference.get(r["set"], {})
            cells += [f"{ref['eer']:.2f}" if "eer" in ref else "-",
                      f"{ref['mindcf_0.01']:.4f}" if "mindcf_0.01" in ref else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_reference(results: str) -> dict | None:
    """The ``paper:`` section (``<set>: {eer:, mindcf_0.01:}``) of ``<results dir>/config.yaml``, if any."""
    import yaml

    path = Path(results).parent / "config.yaml"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    paper = cfg.get("paper") if isinstance(cfg, dict) else None
    if not paper:
        return None
    try:
        return {str(s): {k: float(v) for k, v in m.items()} for s, m in paper.items()}
    except (AttributeError, TypeError, ValueError):
        raise UserError(f"{path}: section 'paper:' must map <set> to {{eer: .., mindcf_0.01: ..}}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = latest_results(read_results(args.results))
    reference = read_reference(args.reference) if args.reference else paper_reference(args.results)
    print(f"Results ({args.results}; latest entry per test set, normalisation and back-end):")
    print(format_table(rows, reference, args.reference_name))
    return 0


if __name__ == "__main__":
    run_main(main)
