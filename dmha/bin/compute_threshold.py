"""Decision threshold and score calibration of an exp dir, both from its validation trials.

Scores the validation trials that training validated on (``<lists-dir>/val_trials`` with
``<lists-dir>/val_feats.scp``, written by stage 2) with the exp's best model (or ``--model``), exactly as
validation does (whole utterances, cosine), and writes from that one embedding pass:

With a back-end fitted for the model (``<exp-dir>/backend``, steps/train_backend.sh: run it first), the
embeddings go through it before cosine scoring, as in stage 5, and both files record its fingerprint.

* ``<exp-dir>/threshold.yaml``: the score threshold (cosine, or the back-end's score) at the EER
  operating point, the EER there, the trial counts, the source trial list and the model's file and step;
* ``<exp-dir>/calibration.yaml`` (unless ``--calibrate false``): ``llr = scale * score + offset``, fitted
  by prior-weighted logistic regression at ``--fit-prior`` (see dmha.scoring.calibration), with the same
  provenance and the validation Cllr / min Cllr / actual DCF.

``dmha-verify`` and ``dmha.load_model(...)`` read them; files of another model (an older best.pt, or
best.pt when --model names an average) are ignored.

Why validation trials: they are held out from training, so neither is tuned on a test set.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.scoring.calibration import DEFAULT_FIT_PRIOR

log = logging.getLogger("dmha.threshold")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.compute_threshold", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--model", default="best.pt",
                   help="weights file in the exp dir, e.g. avg_last5.pt (default %(default)s)")
    p.add_argument("--calibrate", type=_bool, default=True, metavar="true|false",
                   help="also fit <exp-dir>/calibration.yaml (default true)")
    p.add_argument("--fit-prior", type=float, default=DEFAULT_FIT_PRIOR,
                   help="effective target prior of the calibration fit (default %(default)s: Cllr)")
    p.add_argument("exp_dir", help="trained experiment dir (config.yaml, best.pt)")
    p.add_argument("lists_dir", help="training lists dir of stage 2 (val_trials, val_feats.scp)")
    return p


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def compute_threshold(exp_dir: str | Path, lists_dir: str | Path, device: str = "auto",
                      model: str = "best.pt", calibrate: bool = True,
                      fit_prior: float = DEFAULT_FIT_PRIOR) -> dict:
    """Score the validation trials with ``model``; write threshold.yaml (and calibration.yaml)."""
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp, write_calibration, write_threshold
    from dmha.scoring.cosine import cosine_scores
    from dmha.scoring.metrics import compute_eer
    from dmha.training.loop import ValidationSet

    if not 0.0 < fit_prior < 1.0:
        raise UserError(f"--fit-prior must be in (0, 1), got {fit_prior}")
    exp = load_exp(exp_dir, device, model=model)
    lists_dir = Path(lists_dir)
    val = ValidationSet(lists_dir)
    tcfg = exp.config["train"]
    emb = embed_utterances(exp.model, val.feats, device=exp.device, norm=exp.norm,
                           batch_frames=int(tcfg.get("val_max_frames", 20000)),
                           batch_size=int(tcfg.get("val_batch_size", 64)), lengths=val.feats.lengths)
    backend = exp.backend.fingerprint() if exp.backend is not None else None
    if exp.backend is not None:  # <exp>/backend fitted for this model: decide on the scores stage 5 reports
        emb = exp.backend.apply(emb, what=f"{lists_dir}/val_feats.scp embeddings")
        scores = exp.backend.pair_scores(emb[val.enroll], emb[val.test])
    else:
        scores = cosine_scores(emb, val.enroll, val.test)
    labels = val.labels
    if val.domains:  # as in training's validation: only pairs within a domain (lists/val_utt2domain)
        keep = np.logical_or.reduce(list(val.domains.values()))
        scores, labels = scores[keep], labels[keep]
    eer, thr = compute_eer(scores, labels)
    n_target = int(labels.sum())
    path = write_threshold(exp.exp_dir, thr, eer=100.0 * eer, n_target=n_target,
                           n_nontarget=int(len(labels) - n_target), source=str(lists_dir / "val_trials"),
                           best=exp.best, model_file=exp.model_file, backend=backend)
    out = {"threshold": float(thr), "eer": 100.0 * eer, "path": str(path), "trials": len(labels),
           "model": exp.model_file, "backend": exp.backend.kind if exp.backend is not None else "none",
           "score": "plda llr" if exp.backend is not None and exp.backend.kind == "plda" else "cosine"}
    if calibrate:
        from dmha.experiment import CALIBRATION
        from dmha.scoring.calibration import fit_calibration
        from dmha.scoring.metrics import compute_calibration_metrics

        try:
            cal = fit_calibration(scores, labels, prior=fit_prior)
        except UserError as e:
            # An untrained / broken model is still usable with the EER threshold: warn, write nothing,
            # and drop a calibration.yaml of this model left by an earlier run.
            (exp.exp_dir / CALIBRATION).unlink(missing_ok=True)
            log.warning("%s: no calibration written: %s", exp.exp_dir, e)
            return out
        fit_metrics = compute_calibration_metrics(cal.llr(scores), labels)
        info = dict(cal.info)
        info.update({"source": str(lists_dir / "val_trials"), "score": out["score"], "norm": "none",
                     "backend_kind": exp.backend.kind if exp.backend is not None else "none",
                     **{f"val_{k}": round(float(v), 6) for k, v in fit_metrics.items()}})
        out["calibration_path"] = str(write_calibration(exp.exp_dir, cal.with_info(info), best=exp.best,
                                                        model_file=exp.model_file, backend=backend))
        out["calibration"] = {"scale": cal.scale, "offset": cal.offset, **fit_metrics}
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = compute_threshold(args.exp_dir, args.lists_dir, args.device, args.model, args.calibrate,
                          args.fit_prior)
    print(f"threshold {r['threshold']:.6f} (EER {r['eer']:.3f}% on {r['trials']} validation trials, "
          f"{r['model']}, back-end {r['backend']}) -> {r['path']}")
    if "calibration" in r:
        c = r["calibration"]
        print(f"calibration llr = {c['scale']:.4f} * ({r['score']}) + {c['offset']:.4f} "
              f"(fit prior {args.fit_prior:g}; validation Cllr {c['cllr']:.4f}, min Cllr "
              f"{c['min_cllr']:.4f}, actual DCF(0.01) {c['actdcf_0.01']:.4f}) -> {r['calibration_path']}")
    return 0


if __name__ == "__main__":
    run_main(main)
