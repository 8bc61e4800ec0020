"""Score a trial list with cosine similarity (optionally S-/AS-norm, after a mean + LDA [+ PLDA] back-end);
write scores, metrics, DET plot.

Called by steps/score.sh. Outputs:
  <score-file>              ``enroll test score [target|nontarget]`` per scored trial (atomic write)
  <score-file stem>.det.png DET curve (labelled trials only)
  --results FILE            one human line appended, and a row in FILE.tsv (see dmha.scoring.results)
  <score-file stem>.llr     with --calibration: the same trials with calibrated log-likelihood ratios

--calibration FILE (an exp's calibration.yaml, fitted on validation trials by steps/compute_threshold.sh)
maps the scores to LLRs and adds Cllr and the actual DCF at the Bayes thresholds (P_target 0.01, 0.001)
to the metrics; EER and minDCF do not change (the map is increasing). min Cllr is always reported.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.common.fileio import atomic_open, read_kv
from dmha.data.trials import read_trials
from dmha.scoring.cosine import NORMS, score_trials
from dmha.scoring.metrics import compute_calibration_metrics, compute_metrics, det_curve, min_cllr
from dmha.scoring.results import append_result

logger = logging.getLogger("dmha.score")


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trials", help="Kaldi trial list: enroll test [target|nontarget]")
    p.add_argument("emb", help="embedding dir (with xvector.scp) or an .scp file")
    p.add_argument("score_file", help="output score file")
    p.add_argument("--norm", choices=NORMS, default="none", help="score normalisation (default none)")
    p.add_argument("--cohort", help="cohort embeddings (spk_xvector.scp of the training set) for s/as-norm")
    p.add_argument("--top-n", type=int, default=300,
                   help="AS-norm: top cohort scores kept per side (default %(default)s)")
    p.add_argument("--allow-missing", type=_bool, default=False, metavar="true|false",
                   help="skip trials without an embedding instead of failing (default false)")
    p.add_argument("--results", help="results file to append to (default <score-file dir>/../results)")
    p.add_argument("--name", help="test set name in the results (default: score file name without .score)")
    p.add_argument("--backend",
                   help="back-end dir of the exp (steps/train_backend.sh: mean + LDA [+ PLDA]) to apply "
                        "before scoring")
    p.add_argument("--calibration",
                   help="calibration.yaml of the exp (score -> LLR); adds Cllr and the actual DCF")
    p.add_argument("--enroll",
                   help="enrolment models, spk2utt format ('model utt1 utt2 ...'): the trials' first column "
                        "names models, each the mean of its utterances' embeddings (PLDA: scored by the "
                        "count, as Kaldi's ivector-plda-scoring --num-utts)")
    p.add_argument("--det-plot", help="DET curve PNG (default <score-file without .score>.det.png; "
                   "'none' to skip)")
    return p


def _write_scores(path: Path, enroll, test, scores: np.ndarray, labels: np.ndarray | None) -> None:
    with atomic_open(path) as f:
        chunk = []
        for i, (e, t) in enumerate(zip(enroll, test)):
            if labels is None:
                chunk.append(f"{e} {t} {scores[i]:.6f}\n")
            else:
                chunk.append(f"{e} {t} {scores[i]:.6f} {'target' if labels[i] else 'nontarget'}\n")
            if len(chunk) >= 65536:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.norm != "none" and not args.cohort:
        raise UserError(f"--norm {args.norm} needs --cohort <spk_xvector.scp of the training set>")
    score_file = Path(args.score_file)
    stem = score_file.name[:-len(".score")] if score_file.name.endswith(".score") else score_file.name
    name = args.name or stem
    results = Path(args.results) if args.results else score_file.parent.parent / "results"

    backend = None
    if args.backend:
        from dmha.scoring.backend import read_backend

        backend = read_backend(args.backend)
    calibration = None
    if args.calibration:
        from dmha.scoring.calibration import read_calibration_file

        calibration = read_calibration_file(args.calibration)
        fitted_norm = str(calibration.info.get("norm", "none"))
        if fitted_norm != args.norm:
            raise UserError(f"{args.calibration}: fitted on '{fitted_norm}' scores, but --norm is "
                            f"{args.norm}; a calibration only holds for the scores it was fitted on "
                            f"(use --norm {fitted_norm})")
        fitted_backend = calibration.info.get("backend") or None
        used_backend = backend.fingerprint() if backend is not None else None
        if fitted_backend != used_backend:
            then = f"back-end {fitted_backend}" if fitted_backend else "plain cosine scores"
            now = f"--backend {args.backend} ({used_backend})" if backend is not None else "no --backend"
            raise UserError(f"{args.calibration}: fitted on {then}, but scoring uses {now}; re-run "
                            "steps/compute_threshold.sh after steps/train_backend.sh, or score as it was "
                            "fitted")
    trials = read_trials(args.trials, require_labels=False)
    enroll_models = read_kv(args.enroll, multi=True) if args.enroll else None
    scored = score_trials(trials.enroll, trials.test, args.emb, norm=args.norm, cohort=args.cohort,
                          top_n=args.top_n, allow_missing=args.allow_missing, backend=backend,
                          enroll_models=enroll_models)
    kept = scored.kept
    enroll = [e for e, k in zip(trials.enroll, kept) if k]
    test = [t for t, k in zip(trials.test, kept) if k]
    labels = trials.labels[kept] if trials.labels is not None else None
    _write_scores(score_file, enroll, test, scored.scores, labels)
    skipped = f", {scored.n_skipped} skipped (missing embeddings)" if scored.n_skipped else ""
    print(f"{name}: wrote {len(enroll)} scores to {score_file}{skipped}")

    if calibration is not None:
        llr_file = score_file.parent / f"{stem}.llr"
        _write_scores(llr_file, enroll, test, calibration.llr(scored.scores), labels)
        print(f"{name}: wrote log-likelihood ratios to {llr_file}")
    if labels is None:
        print(f"{name}: {args.trials} has no labels; no EER/minDCF")
        return 0

    metrics = compute_metrics(scored.scores, labels)
    how = args.norm if backend is None else f"{args.norm}, back-end {backend.kind}{backend.output_dim}"
    print(f"{name} ({how}): EER {metrics['eer']:.2f}%  minDCF(0.01) {metrics['mindcf_0.01']:.4f}  "
          f"minDCF(0.001) {metrics['mindcf_0.001']:.4f}  "
          f"({len(enroll)} trials: {metrics['n_target']} target, "
          f"{metrics['n_nontarget']} non-target)")
    extra: dict = {"min_cllr": min_cllr(scored.scores, labels)}
    if calibration is not None:
        extra.update(compute_calibration_metrics(calibration.llr(scored.scores), labels))
        extra["calibration"] = str(args.calibration)
        print(f"{name} ({args.norm}, calibrated by {args.calibration}): Cllr {extra['cllr']:.4f}  "
              f"min Cllr {extra['min_cllr']:.4f}  actual DCF(0.01) {extra['actdcf_0.01']:.4f}  "
              f"actual DCF(0.001) {extra['actdcf_0.001']:.4f}")
    if backend is not None:
        extra["backend"] = f"{backend.kind}{backend.output_dim}"
    line = append_result(results, {**extra,
        "set": name, "norm": args.norm, "eer": metrics["eer"], "mindcf_0.01": metrics["mindcf_0.01"],
        "mindcf_0.001": metrics["mindcf_0.001"], "n_trials": len(enroll), "n_target": metrics["n_target"],
        "n_nontarget": metrics["n_nontarget"], "n_skipped": scored.n_skipped, "score_file": str(score_file),
    })
    logger.info("appended to %s: %s", results, line)

    det_png = args.det_plot or str(score_file.parent / f"{stem}.det.png")
    if det_png != "none":
        from dmha.scoring.det_plot import plot_det

        plot_det([(f"{name} ({how})", det_curve(scored.scores, labels))], det_png,
                 title=name, eers=[metrics["eer"] / 100.0])
        print(f"{name}: DET curve {det_png}")
    return 0


if __name__ == "__main__":
    run_main(main)
