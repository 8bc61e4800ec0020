"""Compute the decision threshold of an exp dir: the EER operating point of its validation trials.

Scores the validation trials that training validated on (``<lists-dir>/val_trials`` with
``<lists-dir>/val_feats.scp``, written by stage 2) with the exp's best model, exactly as validation does
(whole utterances, cosine), and writes ``<exp-dir>/threshold.yaml``: the threshold, the EER there, the
trial counts, the source trial list and the best model's step. ``dmha-verify`` and
``dmha.load_model(...).threshold`` read it; a threshold of an older best model is ignored.

Why validation trials: they are held out from training, so the threshold is not tuned on a test set.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dmha.bin._cli import run_main

log = logging.getLogger("dmha.threshold")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.compute_threshold", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("exp_dir", help="trained experiment dir (config.yaml, best.pt)")
    p.add_argument("lists_dir", help="training lists dir of stage 2 (val_trials, val_feats.scp)")
    return p


def compute_threshold(exp_dir: str | Path, lists_dir: str | Path, device: str = "auto") -> dict:
    """Score the validation trials with the best model, write ``<exp>/threshold.yaml``; return its values."""
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp, write_threshold
    from dmha.scoring.cosine import cosine_scores
    from dmha.scoring.metrics import compute_eer
    from dmha.training.loop import ValidationSet

    exp = load_exp(exp_dir, device)
    lists_dir = Path(lists_dir)
    val = ValidationSet(lists_dir)
    tcfg = exp.config["train"]
    emb = embed_utterances(exp.model, val.feats, device=exp.device, norm=exp.norm,
                           batch_frames=int(tcfg.get("val_max_frames", 20000)),
                           batch_size=int(tcfg.get("val_batch_size", 64)), lengths=val.feats.lengths)
    scores = cosine_scores(emb, val.enroll, val.test)
    eer, thr = compute_eer(scores, val.labels)
    n_target = int(val.labels.sum())
    path = write_threshold(exp.exp_dir, thr, eer=100.0 * eer, n_target=n_target,
                           n_nontarget=int(len(val.labels) - n_target), source=str(lists_dir / "val_trials"),
                           best=exp.best)
    return {"threshold": float(thr), "eer": 100.0 * eer, "path": str(path), "trials": len(val.labels)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = compute_threshold(args.exp_dir, args.lists_dir, args.device)
    print(f"threshold {r['threshold']:.6f} (EER {r['eer']:.3f}% on {r['trials']} validation trials) "
          f"-> {r['path']}")
    return 0


if __name__ == "__main__":
    run_main(main)
