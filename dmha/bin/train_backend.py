"""Fit the scoring back-end of an exp (global mean + LDA, optionally PLDA) on its training set's embeddings.

Reads <emb-dir>/xvector.scp (stage 4's embeddings of the training data dir) and <data-dir>/utt2spk, and
writes <exp-dir>/backend/ (or --dir): mean.vec and transform.mat (Kaldi binary; dmha.scoring.backend
says how they are applied) and backend.yaml (kind, dims, counts, the model whose embeddings they are).
Stage 5 (steps/score.sh --backend), steps/compute_threshold.sh, dmha-verify, dmha.load_model and the ONNX
export then score through it. The dir is replaced as a whole, so a killed run leaves the old one.

Why on training embeddings: the back-end must never see a test set; the training speakers are what
the model was fitted on, as in Kaldi's x-vector recipe (LDA on the training x-vectors).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.scoring.backend import DEFAULT_LDA_DIM

log = logging.getLogger("dmha.backend")
_SHOW = 5


def _shrinkage(text: str) -> str | float:
    if text in ("auto", "none"):
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"shrinkage must be in [0, 1], got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.train_backend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=("lda", "plda", "mean"), default="lda",
                   help="lda: mean + LDA, cosine; plda: mean + LDA, then PLDA log-likelihood ratios; "
                        "mean: mean subtraction only (default %(default)s)")
    p.add_argument("--lda-dim", type=int, default=DEFAULT_LDA_DIM,
                   help="LDA output dim, capped at speakers - 1 and the embedding dim (default %(default)s)")
    p.add_argument("--shrinkage", type=_shrinkage, default="auto",
                   help="within-class covariance shrinkage of the LDA: auto (Ledoit-Wolf), none, or a "
                        "number in [0, 1] (default %(default)s)")
    p.add_argument("--model", default="best.pt",
                   help="weights file in <exp-dir> the embeddings were extracted with (default %(default)s)")
    p.add_argument("--dir", help="output dir (default <exp-dir>/backend)")
    p.add_argument("exp_dir", help="trained experiment dir")
    p.add_argument("data_dir", help="the training data dir (utt2spk)")
    p.add_argument("emb_dir", help="its embeddings (xvector.scp), from steps/extract_embeddings.sh")
    return p


def _check_extracted_with(emb_dir: Path, model: str) -> None:
    """The embeddings must come from ``model``: extraction's stamp names the weights file it used."""
    stamp = emb_dir / ".extract_info"
    if not stamp.is_file():
        log.warning("%s: no extraction stamp; cannot check that the embeddings are from %s", emb_dir, model)
        return
    try:
        # first line: JSON of the inputs (file name, size, mtime); second: its digest
        inputs = json.loads(stamp.read_text(encoding="utf-8").splitlines()[0]).get("inputs", [])
    except (json.JSONDecodeError, AttributeError, IndexError):
        log.warning("%s: unreadable extraction stamp; cannot check the model", stamp)
        return
    names = {str(item).split(" ", 1)[0] for item in inputs}
    if Path(model).name not in names:
        raise UserError(f"{emb_dir}: extracted with another model than {model} ({', '.join(sorted(names))}); "
                        f"extract with steps/extract_embeddings.sh --model {model} first")


def train_backend(exp_dir: str | Path, data_dir: str | Path, emb_dir: str | Path, *, kind: str = "lda",
                  lda_dim: int = DEFAULT_LDA_DIM, shrinkage: str | float = "auto", model: str = "best.pt",
                  out_dir: str | Path | None = None) -> dict:
    """Fit and write the back-end; return what was fitted (path, kind, dims, counts)."""
    import kaldiio

    from dmha.common.fileio import read_kv
    from dmha.experiment import BACKEND, model_path, model_stamp
    from dmha.scoring.backend import fit_backend, write_backend
    from dmha.training.checkpoint import load_checkpoint

    exp_dir, data_dir, emb_dir = Path(exp_dir), Path(data_dir), Path(emb_dir)
    ckpt = load_checkpoint(model_path(exp_dir, model), map_location="cpu")
    best = {k: ckpt[k] for k in ("epoch", "step") if ckpt.get(k) is not None}
    if not (data_dir / "utt2spk").is_file():
        raise UserError(f"{data_dir}/utt2spk not found; give the training data dir")
    scp = emb_dir / "xvector.scp"
    if not scp.is_file():
        raise UserError(f"{scp} not found; extract the training set's embeddings first "
                        f"(steps/extract_embeddings.sh {exp_dir} {data_dir} {emb_dir})")
    _check_extracted_with(emb_dir, model)
    utt2spk = read_kv(data_dir / "utt2spk")
    table = kaldiio.load_scp(str(scp))
    missing = [u for u in utt2spk if u not in table]
    if missing:
        raise UserError(f"{len(missing)} of {len(utt2spk)} utterances of {data_dir} have no embedding in "
                        f"{scp} (first: {' '.join(missing[:_SHOW])}); re-extract the training set")
    utts = sorted(utt2spk)
    emb = np.stack([np.asarray(table[u], dtype=np.float32).ravel() for u in utts])
    backend = fit_backend(emb, [utt2spk[u] for u in utts], kind=kind, lda_dim=lda_dim, shrinkage=shrinkage)
    backend.info.update({"data": str(data_dir), "source": str(scp), **model_stamp(best, model)})
    out = write_backend(Path(out_dir) if out_dir else exp_dir / BACKEND, backend)
    return {"path": str(out), "kind": backend.kind, "input_dim": backend.input_dim,
            "output_dim": backend.output_dim, "n_utts": len(utts), "n_speakers": backend.info["n_speakers"]}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = train_backend(args.exp_dir, args.data_dir, args.emb_dir, kind=args.kind, lda_dim=args.lda_dim,
                      shrinkage=args.shrinkage, model=args.model, out_dir=args.dir)
    print(f"back-end {r['kind']}: {r['input_dim']} -> {r['output_dim']} dims, fitted on {r['n_utts']} "
          f"utterances of {r['n_speakers']} speakers -> {r['path']}")
    return 0


if __name__ == "__main__":
    run_main(main)
