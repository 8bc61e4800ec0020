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
4. length-normalise again, so a dot product is the cosine;
5. kind ``plda`` only: project into the diagonal space of a two-covariance PLDA fitted on the LDA output
   (:class:`Plda`), where a trial's score is the log-likelihood ratio of "same speaker" against
   "different speakers" instead of the cosine.

Files (``<exp>/backend/``), readable by Kaldi: ``mean.vec`` (Kaldi binary vector), ``transform.mat``
(Kaldi binary matrix, ``k x D``; absent for kind ``mean``) and ``backend.yaml`` (kind, dims, the data it
was fitted on, the model whose embeddings they were). In Kaldi terms: ``ivector-normalize-length``,
``ivector-subtract-global-mean mean.vec``, ``transform-vec transform.mat``, ``ivector-normalize-length``.
Kind ``plda`` adds ``plda_mean.vec``, ``plda_transform.mat`` and ``plda_psi.vec``: the three members of
Kaldi's ``Plda`` object (its binary container for ``ivector-plda-scoring`` is not written).

Scores: :meth:`Backend.pair_scores` / :meth:`Backend.cross_scores` (and the module functions of the same
names, which also take no back-end = cosine) are the one place that turns mapped rows into trial scores,
so stage 5, the S-norm cohort, the threshold, ``dmha-verify`` and the ONNX runtime agree for every kind.

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
KINDS = ("none", "mean", "lda", "plda")
FITTED_KINDS = KINDS[1:]
MEAN_FILE = "mean.vec"
TRANSFORM_FILE = "transform.mat"
PLDA_FILES = {"mean": "plda_mean.vec", "transform": "plda_transform.mat", "psi": "plda_psi.vec"}
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
class Plda:
    """Two-covariance PLDA in Kaldi's diagonal form: ``u = transform @ (y - mean)`` makes the within-speaker
    covariance the identity and the between-speaker covariance ``diag(psi)``.

    Why PLDA after LDA: cosine treats every LDA direction alike; PLDA weighs each by how much more it
    varies between speakers than within one (``psi``), and scores a log-likelihood ratio. Kaldi's x-vector
    recipes score this way; on the mini recipe it measured about one EER point better than LDA + cosine
    (README, "Scoring back-end"). For one enrolment utterance the ratio is, per dimension,
    ``log(psi + 1) - log(2 psi + 1) / 2 - psi^2 / (2 (2 psi + 1)(psi + 1)) (a^2 + b^2)
    + psi / (2 psi + 1) a b``
    (both sides Gaussian with variance ``psi + 1``; same speaker: covariance ``psi`` between them).
    """

    mean: np.ndarray        # (k,)
    transform: np.ndarray   # (k, k)
    psi: np.ndarray         # (k,) >= 0

    def project(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.mean) @ self.transform.T

    def _enrolment_terms(self, ua: np.ndarray, counts: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per enrolment row: the constant, the weights of the test row's squares and of the test row.

        The enrolment side is the mean ``ua`` of ``n`` projected rows of one speaker (``counts``; None =
        1 each). Given them, the speaker's variable has mean ``n psi / (n psi + 1) ua`` and variance
        ``psi / (n psi + 1)``, so a same-speaker test row is Gaussian with that mean and variance
        ``1 + psi / (n psi + 1)``; a different speaker's is ``N(0, 1 + psi)``. The log ratio of the two is
        a quadratic in the test row ``v``: ``const + sum(w * v^2) + sum(m * v)``, returned as
        ``(const (Na,), w (Na, k), m (Na, k))``. This is Kaldi's scoring "by the count"
        (``ivector-plda-scoring --num-utts``); with ``n = 1`` it is the symmetric one-utterance ratio.
        """
        psi = self.psi
        n = np.ones(ua.shape[0]) if counts is None else np.asarray(counts, dtype=np.float64).reshape(-1)
        if n.shape[0] != ua.shape[0] or np.any(n < 1):
            raise ValueError(f"counts: expected {ua.shape[0]} enrolment counts >= 1, got {n}")
        shrink = n[:, None] * psi / (n[:, None] * psi + 1.0)        # posterior mean = shrink * ua
        var = 1.0 + psi / (n[:, None] * psi + 1.0)                   # same-speaker predictive variance
        mean = shrink * ua
        const = 0.5 * np.sum(np.log1p(psi) - np.log(var) - mean * mean / var, axis=1)
        return const, 0.5 / (1.0 + psi) - 0.5 / var, mean / var

    def pair_llr(self, ua: np.ndarray, ub: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Log-likelihood ratios of projected rows ``ua[i]`` vs ``ub[i]``; ``ua[i]`` may be the mean of
        ``counts[i]`` projected enrolment rows of one speaker (None: one each)."""
        ua, ub = np.asarray(ua, dtype=np.float64), np.asarray(ub, dtype=np.float64)
        const, w, m = self._enrolment_terms(ua, counts)
        return const + np.einsum("ij,ij->i", w, ub * ub) + np.einsum("ij,ij->i", m, ub)

    def cross_llr(self, ua: np.ndarray, uc: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Log-likelihood ratios of every projected row of ``ua`` (means of ``counts`` rows, as in
        :meth:`pair_llr`) against every row of ``uc``."""
        ua, uc = np.asarray(ua, dtype=np.float64), np.asarray(uc, dtype=np.float64)
        const, w, m = self._enrolment_terms(ua, counts)
        return const[:, None] + w @ (uc * uc).T + m @ uc.T


def fit_plda(y: np.ndarray, speakers: Sequence[str]) -> Plda:
    """Moment estimate of a two-covariance PLDA on rows ``y`` (the LDA output) with speaker labels.

    Within ``W``: the pooled covariance of the rows around their speaker's mean (unbiased: divided by
    utterances - speakers). Between ``B``: the covariance of the speaker means less ``W`` times the mean
    of 1 / (utterances per speaker) (a speaker's mean of n rows still carries W / n of within-speaker
    noise; without this, directions with little speaker information get too much weight). The
    generalised eigenproblem ``B v = psi W v`` (scipy) gives the diagonal form; negative ``psi`` (no
    speaker information) are set to 0.
    """
    from scipy.linalg import eigh

    y = np.asarray(y, dtype=np.float64)
    spk = np.asarray(list(speakers))
    mean = y.mean(axis=0)
    x = y - mean
    labels, inverse = np.unique(spk, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    if x.shape[0] - labels.size < x.shape[1]:
        raise UserError(f"PLDA: {x.shape[0]} utterances of {labels.size} speakers leave "
                        f"{x.shape[0] - labels.size} degrees of freedom for a {x.shape[1]}-dim "
                        "within-speaker covariance; give it more utterances per speaker, a lower "
                        "--lda-dim, or --kind lda")
    centroids = np.zeros((labels.size, x.shape[1]))
    np.add.at(centroids, inverse, x)
    centroids /= counts[:, None]
    resid = x - centroids[inverse]
    within = resid.T @ resid / max(x.shape[0] - labels.size, 1)   # each speaker's mean uses one degree
    between = np.cov(centroids.T, bias=True) - within * float(np.mean(1.0 / counts))
    # a tiny ridge keeps W positive definite when a direction has (numerically) no within-speaker spread
    within += np.eye(within.shape[0]) * 1e-6 * max(np.trace(within) / within.shape[0], 1e-12)
    psi, vecs = eigh(between, within)            # vecs.T @ within @ vecs = I
    order = np.argsort(psi)[::-1]
    return Plda(mean, vecs[:, order].T.copy(), np.clip(psi[order], 0.0, None))


@dataclass
class Backend:
    """A fitted back-end: ``mean`` (D,), ``transform`` (k, D) or None for kind ``mean``, ``plda`` on top of
    the LDA for kind ``plda``, ``info``."""

    mean: np.ndarray
    transform: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    plda: Plda | None = None

    @property
    def kind(self) -> str:
        return "plda" if self.plda is not None else "mean" if self.transform is None else "lda"

    def _arrays(self) -> dict[str, np.ndarray]:
        """Every fitted array by its serialised name (the order is the fingerprint's)."""
        arrays = {"mean": self.mean}
        if self.transform is not None:
            arrays["transform"] = self.transform
        if self.plda is not None:
            arrays.update({f"plda_{k}": getattr(self.plda, k) for k in PLDA_FILES})
        return arrays

    @property
    def input_dim(self) -> int:
        return int(self.mean.size)

    @property
    def output_dim(self) -> int:
        return self.input_dim if self.transform is None else int(self.transform.shape[0])

    def fingerprint(self) -> str:
        """A short hash of the arrays: thresholds and calibrations record it to detect a refitted back-end."""
        h = hashlib.sha1()
        for arr in self._arrays().values():
            h.update(np.asarray(arr, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def to_text(self) -> str:
        """The arrays as one JSON string (base64 float32), for an exported model's metadata: a deployed
        model stays one file, and its runtime needs only numpy to apply the back-end."""
        d: dict[str, Any] = {"kind": self.kind, "fingerprint": self.fingerprint(), "dim": self.input_dim}
        for name, arr in self._arrays().items():
            d[name] = base64.b64encode(np.asarray(arr, dtype="<f4").tobytes()).decode("ascii")
        return json.dumps(d)

    @classmethod
    def from_text(cls, text: str, where: str = "back-end") -> Backend:
        """Inverse of :meth:`to_text`; the fingerprint is checked, so a damaged string is an error."""
        def array(name: str) -> np.ndarray:
            return np.frombuffer(base64.b64decode(d[name]), dtype="<f4").astype(np.float64)

        try:
            d = json.loads(text)
            dim = int(d["dim"])
            mean = array("mean")
            transform = array("transform").reshape(-1, dim) if "transform" in d else None
            plda = None
            if "plda_mean" in d:
                k = int(transform.shape[0])
                plda = Plda(array("plda_mean"), array("plda_transform").reshape(k, k), array("plda_psi"))
            backend = cls(mean, transform, {"kind": d["kind"], "fingerprint": d["fingerprint"]}, plda)
            ok = mean.size == dim and backend.fingerprint() == d["fingerprint"] and backend.kind == d["kind"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{where}: unreadable back-end ({e}); re-export the model") from None
        if not ok:
            raise UserError(f"{where}: the back-end's arrays do not match their fingerprint; "
                            "re-export the model")
        return backend

    def apply(self, emb: np.ndarray, what: str = "embeddings") -> np.ndarray:
        """The rows of ``emb`` in the back-end's scoring space (float32, (N, k)): unit-norm rows for kinds
        mean and lda (a dot product is the score), PLDA-projected rows for kind plda; score them with
        :meth:`pair_scores` / :meth:`cross_scores`."""
        x = np.atleast_2d(np.asarray(emb, dtype=np.float64))
        if x.shape[1] != self.input_dim:
            raise UserError(f"{what}: dimension {x.shape[1]}, but the back-end was fitted on "
                            f"{self.input_dim}-dim embeddings ({self.info.get('source', 'another model')}); "
                            "re-run steps/train_backend.sh for this model")
        y = unit_rows(x, what) - self.mean
        if self.transform is not None:
            y = y @ self.transform.T
        y = unit_rows(y, f"{what} after the back-end")
        if self.plda is not None:
            y = self.plda.project(y)
        return y.astype(np.float32)

    def pair_scores(self, a: np.ndarray, b: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Scores of mapped rows ``a[i]`` vs ``b[i]`` (float64): cosine, or the PLDA log-likelihood ratio;
        ``counts``: :func:`pair_scores`."""
        return pair_scores(a, b, self, counts)

    def cross_scores(self, a: np.ndarray, c: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Scores of every mapped row of ``a`` against every mapped row of ``c`` (float64, (len(a),
        len(c)))."""
        return cross_scores(a, c, self, counts)


def pair_scores(a: np.ndarray, b: np.ndarray, backend: Backend | None = None,
                counts: np.ndarray | None = None) -> np.ndarray:
    """Row-wise trial scores of rows already mapped by ``backend``: the PLDA log-likelihood ratio for a
    plda back-end, else the dot product of the unit rows (cosine). ``a[i]`` may be an enrolment model of
    ``counts[i]`` utterances (:func:`enrolment_models`); only PLDA scores use the count."""
    if backend is not None and backend.plda is not None:
        return backend.plda.pair_llr(a, b, counts)
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


def cross_scores(a: np.ndarray, c: np.ndarray, backend: Backend | None = None,
                 counts: np.ndarray | None = None) -> np.ndarray:
    """All-pairs scores of rows already mapped by ``backend`` (PLDA llr, else cosine of unit rows);
    ``counts`` as in :func:`pair_scores`."""
    if backend is not None and backend.plda is not None:
        return backend.plda.cross_llr(a, c, counts)
    return np.asarray(a, dtype=np.float64) @ np.asarray(c, dtype=np.float64).T


def enrolment_models(mapped: np.ndarray, groups: Sequence[Sequence[int]],
                     backend: Backend | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Speaker models from several enrolment utterances each: ``(models (M, k), counts (M,))``.

    ``mapped`` are rows already mapped by ``backend`` (unit rows without one), ``groups[j]`` the row
    indices of model ``j``'s utterances. A model is the mean of its rows: for PLDA the mean of the
    projected rows, scored by the count (:meth:`Plda.pair_llr`); for cosine the mean of the unit rows
    scaled back to unit length (Kaldi's speaker-mean x-vector, as extraction's ``spk_xvector``).
    """
    mapped = np.asarray(mapped, dtype=np.float64)
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    if np.any(counts < 1):
        raise UserError("an enrolment model needs at least one utterance")
    models = np.stack([mapped[np.asarray(g, dtype=np.int64)].mean(axis=0) for g in groups])
    if backend is None or backend.plda is None:
        models = unit_rows(models, "enrolment models")
    return models, counts


def fit_backend(emb: np.ndarray, speakers: Sequence[str], kind: str = "lda", lda_dim: int = DEFAULT_LDA_DIM,
                shrinkage: str | float | None = "auto") -> Backend:
    """Fit a back-end on training embeddings ``emb`` (N, D) with their speaker labels.

    ``lda_dim`` is capped at (number of speakers - 1) and D; the cap is recorded in ``info``.
    """
    if kind not in FITTED_KINDS:
        raise UserError(f"back-end kind '{kind}': choose {', '.join(FITTED_KINDS)} (none fits nothing)")
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
        raise UserError(f"{kind.upper()} needs embeddings of at least 3 speakers, got {n_spk}; "
                        "use --kind mean")
    if lda_dim < 1:
        raise UserError(f"--lda-dim must be >= 1, got {lda_dim}")
    if x.shape[0] <= n_spk:
        raise UserError(f"{kind.upper()} needs more embeddings than speakers ({x.shape[0]} of {n_spk} "
                        "speakers): it learns from the variation within each speaker; use --kind mean")
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    dim = min(int(lda_dim), n_spk - 1, x.shape[1])
    if shrinkage in (None, "none"):
        lda = LinearDiscriminantAnalysis(solver="svd", n_components=dim)
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=dim)
    try:
        lda.fit(x - mean, spk)
    except (np.linalg.LinAlgError, ValueError) as e:  # e.g. a singular within-class covariance
        raise UserError(f"LDA fit failed on {x.shape[0]} embeddings of {n_spk} speakers ({e}); give it more "
                        "utterances per speaker, or use --kind mean") from None
    # The linear map of transform(): eigen solver X @ scalings_; svd solver (X - xbar_) @ scalings_,
    # an offset that cosine after a second mean would not remove, so fold xbar_ into the mean.
    if shrinkage in (None, "none"):
        mean = mean + lda.xbar_
    transform = np.asarray(lda.scalings_[:, :dim].T, dtype=np.float64)
    info.update({"lda_dim": dim, "lda_dim_requested": int(lda_dim),
                 "shrinkage": "none" if shrinkage in (None, "none") else shrinkage})
    backend = Backend(mean, transform, info)
    if kind == "plda":
        backend.plda = fit_plda(backend.apply(x, "training embeddings"), spk)
    return backend


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
        if backend.plda is not None:
            for name, file in PLDA_FILES.items():
                kaldiio.save_mat(str(tmp / file), getattr(backend.plda, name).astype(np.float32))
        note = "length norm, minus mean.vec, times transform.mat (if any), length norm, then "
        note += ("PLDA log-likelihood ratio (plda_*: Kaldi Plda members)" if backend.plda is not None
                 else "cosine")
        info = {**backend.info, "kind": backend.kind, "output_dim": backend.output_dim,
                "fingerprint": backend.fingerprint(), "note": note}
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
    if kind not in FITTED_KINDS:
        raise UserError(f"{info_path}: unknown back-end kind '{kind}' ({', '.join(FITTED_KINDS)})")

    def load(file: str) -> np.ndarray:
        return np.asarray(kaldiio.load_mat(str(directory / file)), dtype=np.float64)

    try:
        mean = load(MEAN_FILE).ravel()
        transform = load(TRANSFORM_FILE) if kind in ("lda", "plda") else None
        plda = None
        if kind == "plda":
            plda = Plda(load(PLDA_FILES["mean"]).ravel(), load(PLDA_FILES["transform"]),
                        load(PLDA_FILES["psi"]).ravel())
    except Exception as e:  # missing or damaged Kaldi file
        raise UserError(f"{directory}: cannot read the back-end's Kaldi files ({e}); "
                        "re-run steps/train_backend.sh") from None
    if transform is not None and (transform.ndim != 2 or transform.shape[1] != mean.size):
        raise UserError(f"{directory}/{TRANSFORM_FILE}: shape {transform.shape} does not fit {MEAN_FILE} "
                        f"of dimension {mean.size}; re-run steps/train_backend.sh")
    if plda is not None:
        k = transform.shape[0]
        if plda.transform.shape != (k, k) or plda.mean.size != k or plda.psi.size != k:
            raise UserError(f"{directory}: the PLDA files do not fit the {k}-dim LDA of {TRANSFORM_FILE}; "
                            "re-run steps/train_backend.sh")
    return Backend(mean, transform, info, plda)


def enrolment_items(a: Any) -> list[Any]:
    """The enrolment side of ``score(a, b)`` as a list: a list/tuple of recordings or embeddings, the rows
    of a 2-D array, or the one recording / embedding ``a`` (a 1-D array or a list of numbers)."""
    if isinstance(a, (list, tuple)) and a and not isinstance(a[0], (int, float, np.number)):
        return list(a)
    if isinstance(a, np.ndarray) and a.ndim == 2:
        return list(a)
    return [a]


def pair_score(a: np.ndarray, b: np.ndarray, backend: Backend | None = None) -> float:
    """The score of one trial, as stage 5 computes it: cosine (or PLDA llr) after ``backend`` (if any).

    ``a`` is one enrolment embedding (D,) or several of one speaker (n, D): their model is scored as
    :func:`enrolment_models` builds it (``steps/score.sh --enroll``)."""
    enrol = np.atleast_2d(np.asarray(a, dtype=np.float64))
    test = np.asarray(b, dtype=np.float64).reshape(1, -1)
    if enrol.shape[1] != test.shape[1]:
        raise UserError(f"score(): enrolment embeddings of dimension {enrol.shape[1]}, test embedding of "
                        f"{test.shape[1]}; embed both with the same model")
    x = np.concatenate([enrol, test])
    if not np.all(np.linalg.norm(x, axis=1) > 0):
        raise UserError("score(): an embedding is all zeros; cosine similarity is undefined")
    x = backend.apply(x) if backend is not None else unit_rows(x, "score()")
    model, counts = enrolment_models(x, [range(enrol.shape[0])], backend)
    return float(pair_scores(model, x[-1:], backend, counts)[0])
