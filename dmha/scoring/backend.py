"""Embedding back-end fitted on the training set's embeddings: global mean and LDA before cosine scoring.

Why: the embeddings of a model trained on few speakers keep directions that vary *within* a speaker
(text, channel, the noise and rooms of the augmented corpus). Kaldi's x-vector recipe removes them with
a back-end fitted on training embeddings (global mean, LDA, length norm, then PLDA); WeSpeaker keeps
the mean subtraction. On the mini recipe, mean + LDA before cosine scoring lowers mini_test EER far more
than any training change measured (README, "Scoring back-end").

What :meth:`Backend.apply` does to an embedding ``x`` (rows of a matrix):

1. length-normalise ``x`` (the AM-Softmax classifier sees unit-norm embeddings);
2. subtract the global mean ``m`` of the normalised training embeddings;
3. project with the LDA matrix ``W`` (``k x D``; kind ``lda``), or keep all ``D`` dims (kind ``mean``);
4. length-normalise again, so a dot product is the cosine.

Files (``<exp>/backend/``), readable by Kaldi: ``mean.vec`` (Kaldi binary vector), ``transform.mat``
(Kaldi binary matrix, ``k x D``; absent for kind ``mean``) and ``backend.yaml`` (kind, dims, the data it
was fitted on, the model whose embeddings they were). In Kaldi terms: ``ivector-normalize-length``,
``ivector-subtract-global-mean mean.vec``, ``transform-vec transform.mat``, ``ivector-normalize-length``.

The LDA is scikit-learn's (eigen solver; Ledoit-Wolf shrinkage of the within-class covariance by
default, which measured better than none on the mini corpus where 52-99 speakers give a poorly
estimated 400-dim covariance). Applying a back-end needs only numpy and kaldiio; fitting needs sklearn.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dmha.common.errors import UserError

PathLike = str | os.PathLike
BACKEND_DIR = "backend"      # <exp>/backend
KINDS = ("none", "mean", "lda")
MEAN_FILE = "mean.vec"
TRANSFORM_FILE = "transform.mat"
INFO_FILE = "backend.yaml"
DEFAULT_LDA_DIM = 200        # Kaldi's x-vector recipe; capped at speakers - 1 and the embedding dim


def unit_rows(x: np.ndarray, what: str, keys: Sequence[str] | None = None) -> np.ndarray:
    """``x`` with every row scaled to unit length; a zero or non-finite row is a UserError naming it
    (by ``keys[i]`` when given, else its row number)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    bad = np.flatnonzero(~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0)))
    if bad.size:
        first = f"'{keys[bad[0]]}'" if keys is not None else f"row {bad[0]}"
        raise UserError(f"{what}: {bad.size} embeddings are zero or not finite (first: {first}); "
                        "re-extract them")
    return x / norms


@dataclass
class Backend:
    """A fitted back-end: ``mean`` (D,), ``transform`` (k, D) or None for kind ``mean``, ``info``."""

    mean: np.ndarray
    transform: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "mean" if self.transform is None else "lda"

    @property
    def input_dim(self) -> int:
        return int(self.mean.size)

    @property
    def output_dim(self) -> int:
        return self.input_dim if self.transform is None else int(self.transform.shape[0])

    def fingerprint(self) -> str:
        """A short hash of the arrays: thresholds and calibrations record it to detect a refitted back-end."""
        h = hashlib.sha1(self.mean.astype(np.float32).tobytes())
        if self.transform is not None:
            h.update(self.transform.astype(np.float32).tobytes())
        return h.hexdigest()[:16]

    def to_text(self) -> str:
        """The arrays as one JSON string (base64 float32), for an exported model's metadata: a deployed
        model stays one file, and its runtime needs only numpy to apply the back-end."""
        d: dict[str, Any] = {"kind": self.kind, "fingerprint": self.fingerprint(), "dim": self.input_dim,
                             "mean": base64.b64encode(self.mean.astype("<f4").tobytes()).decode("ascii")}
        if self.transform is not None:
            d["transform"] = base64.b64encode(self.transform.astype("<f4").tobytes()).decode("ascii")
        return json.dumps(d)

    @classmethod
    def from_text(cls, text: str, where: str = "back-end") -> Backend:
        """Inverse of :meth:`to_text`; the fingerprint is checked, so a damaged string is an error."""
        try:
            d = json.loads(text)
            dim = int(d["dim"])
            mean = np.frombuffer(base64.b64decode(d["mean"]), dtype="<f4").astype(np.float64)
            transform = None
            if "transform" in d:
                transform = np.frombuffer(base64.b64decode(d["transform"]), dtype="<f4").astype(np.float64)
                transform = transform.reshape(-1, dim)
            backend = cls(mean, transform, {"kind": d["kind"], "fingerprint": d["fingerprint"]})
            ok = mean.size == dim and backend.fingerprint() == d["fingerprint"]
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{where}: unreadable back-end ({e}); re-export the model") from None
        if not ok:
            raise UserError(f"{where}: the back-end's arrays do not match their fingerprint; "
                            "re-export the model")
        return backend

    def apply(self, emb: np.ndarray, what: str = "embeddings") -> np.ndarray:
        """Unit-norm rows of the back-end's space for the rows of ``emb`` (float32, (N, k))."""
        x = np.atleast_2d(np.asarray(emb, dtype=np.float64))
        if x.shape[1] != self.input_dim:
            raise UserError(f"{what}: dimension {x.shape[1]}, but the back-end was fitted on "
                            f"{self.input_dim}-dim embeddings ({self.info.get('source', 'another model')}); "
                            "re-run steps/train_backend.sh for this model")
        y = unit_rows(x, what) - self.mean
        if self.transform is not None:
            y = y @ self.transform.T
        return unit_rows(y, f"{what} after the back-end").astype(np.float32)


def fit_backend(emb: np.ndarray, speakers: Sequence[str], kind: str = "lda", lda_dim: int = DEFAULT_LDA_DIM,
                shrinkage: str | float | None = "auto") -> Backend:
    """Fit a back-end on training embeddings ``emb`` (N, D) with their speaker labels.

    ``lda_dim`` is capped at (number of speakers - 1) and D; the cap is recorded in ``info``.
    """
    if kind not in ("mean", "lda"):
        raise UserError(f"back-end kind '{kind}': choose mean or lda (none fits nothing)")
    x = unit_rows(np.asarray(emb, dtype=np.float64), "training embeddings")
    spk = np.asarray(list(speakers))
    if spk.size != x.shape[0]:
        raise UserError(f"{x.shape[0]} embeddings but {spk.size} speaker labels")
    n_spk = int(np.unique(spk).size)
    mean = x.mean(axis=0)
    info: dict[str, Any] = {"kind": kind, "n_utts": int(x.shape[0]), "n_speakers": n_spk,
                            "input_dim": int(x.shape[1])}
    if kind == "mean":
        return Backend(mean, None, info)
    if n_spk < 3:
        raise UserError(f"LDA needs embeddings of at least 3 speakers, got {n_spk}; use --kind mean")
    if lda_dim < 1:
        raise UserError(f"--lda-dim must be >= 1, got {lda_dim}")
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    dim = min(int(lda_dim), n_spk - 1, x.shape[1])
    if shrinkage in (None, "none"):
        lda = LinearDiscriminantAnalysis(solver="svd", n_components=dim)
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=dim)
    lda.fit(x - mean, spk)
    # The linear map of transform(): eigen solver X @ scalings_; svd solver (X - xbar_) @ scalings_,
    # an offset that cosine after a second mean would not remove, so fold xbar_ into the mean.
    if shrinkage in (None, "none"):
        mean = mean + lda.xbar_
    transform = np.asarray(lda.scalings_[:, :dim].T, dtype=np.float64)
    info.update({"lda_dim": dim, "lda_dim_requested": int(lda_dim),
                 "shrinkage": "none" if shrinkage in (None, "none") else shrinkage})
    return Backend(mean, transform, info)


def write_backend(directory: PathLike, backend: Backend) -> Path:
    """Write the back-end files into ``directory``, replaced as a whole (a killed write leaves the old)."""
    import kaldiio

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        kaldiio.save_mat(str(tmp / MEAN_FILE), backend.mean.astype(np.float32))
        if backend.transform is not None:
            kaldiio.save_mat(str(tmp / TRANSFORM_FILE), backend.transform.astype(np.float32))
        info = {**backend.info, "kind": backend.kind, "output_dim": backend.output_dim,
                "fingerprint": backend.fingerprint(),
                "note": "length norm, minus mean.vec, times transform.mat (if any), length norm, then cosine"}
        with open(tmp / INFO_FILE, "w", encoding="utf-8") as f:
            yaml.safe_dump(info, f, sort_keys=False)
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_backend(directory: PathLike) -> Backend:
    """Read a back-end written by :func:`write_backend` (or by hand with Kaldi tools + backend.yaml)."""
    import kaldiio

    directory = Path(directory)
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        raise UserError(f"{directory}: no {INFO_FILE}; fit a back-end with steps/train_backend.sh")
    try:
        with open(info_path, encoding="utf-8") as f:
            info = yaml.safe_load(f) or {}
        kind = str(info["kind"])
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise UserError(f"{info_path}: not a back-end description ({e}); "
                        "re-run steps/train_backend.sh") from None
    if kind not in ("mean", "lda"):
        raise UserError(f"{info_path}: unknown back-end kind '{kind}' (mean or lda)")
    try:
        mean = np.asarray(kaldiio.load_mat(str(directory / MEAN_FILE)), dtype=np.float64).ravel()
        transform = None
        if kind == "lda":
            transform = np.asarray(kaldiio.load_mat(str(directory / TRANSFORM_FILE)), dtype=np.float64)
    except Exception as e:  # missing or damaged Kaldi file
        raise UserError(f"{directory}: cannot read the back-end's Kaldi files ({e}); "
                        "re-run steps/train_backend.sh") from None
    if transform is not None and (transform.ndim != 2 or transform.shape[1] != mean.size):
        raise UserError(f"{directory}/{TRANSFORM_FILE}: shape {transform.shape} does not fit {MEAN_FILE} "
                        f"of dimension {mean.size}; re-run steps/train_backend.sh")
    return Backend(mean, transform, info)


def pair_score(a: np.ndarray, b: np.ndarray, backend: Backend | None = None) -> float:
    """The score of one trial, as stage 5 computes it: cosine of two embeddings after ``backend`` (if any)."""
    x = np.stack([np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)])
    if not np.all(np.linalg.norm(x, axis=1) > 0):
        raise UserError("score(): an embedding is all zeros; cosine similarity is undefined")
    x = backend.apply(x) if backend is not None else unit_rows(x, "score()")
    return float(np.dot(x[0].astype(np.float64), x[1].astype(np.float64)))
