"""Cosine scoring of trial lists, with optional S-norm / adaptive S-norm against a cohort.

Why vectorised: a VoxCeleb1-E list has 580k trials over 145k utterances. Each unique utterance is
loaded and L2-normalised ONCE into a matrix; a trial is then a pair of row indices and its score a
row-wise dot product, computed in chunks so memory stays bounded. Score normalisation statistics are
also per utterance (not per trial): the utterance-vs-cohort score matrix is computed in row chunks and
reduced to a mean and standard deviation per utterance, then applied to all its trials at once.

Normalisation (Matejka et al., 2017): s' = 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t), where mu/sd of
a side are the mean / population standard deviation (ddof = 0) of that side's cosine scores against the
cohort (S-norm: all cohort entries; AS-norm: only its ``top_n`` highest scores). The cohort is the set
of per-speaker mean training embeddings (``spk_xvector.scp`` written by extraction).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from dmha.common.errors import UserError
from dmha.scoring.backend import Backend, cross_scores, enrolment_models, pair_scores, unit_rows

logger = logging.getLogger(__name__)

NORMS = ("none", "snorm", "asnorm")
_SHOW_MISSING = 5          # keys listed in a missing-embedding error

EmbeddingSource = Union[Mapping, str, os.PathLike]


def cosine_scores(emb: np.ndarray, enroll_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows ``enroll_idx`` and ``test_idx`` of ``emb`` (one score per trial)."""
    x = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", x[enroll_idx], x[test_idx])


def open_embeddings(source: EmbeddingSource) -> Mapping:
    """A key -> vector mapping from a dict, a kaldiio ``.scp`` file, or an embedding dir.

    An embedding dir means ``<dir>/xvector.scp``. Loading from scp files is lazy (kaldiio), so only the
    utterances a trial list needs are read.
    """
    if isinstance(source, Mapping):
        return source
    import kaldiio  # local import: the metrics/validation path must not pay for it

    path = Path(source)
    if path.is_dir():
        path = path / "xvector.scp"
    if not path.is_file():
        raise UserError(f"{path}: embedding scp not found; run steps/extract_embeddings.sh first")
    try:
        return kaldiio.load_scp(str(path))
    except Exception as e:  # malformed scp line
        raise UserError(f"{path}: cannot read embedding scp ({e})") from e


def normalized_matrix(embeddings: Mapping, keys: Sequence[str], what: str = "embeddings") -> np.ndarray:
    """Stack ``embeddings[k]`` for ``keys`` into a float32 (len(keys), D) matrix of unit-norm rows."""
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    first = np.asarray(embeddings[keys[0]], dtype=np.float32).ravel()
    mat = np.empty((len(keys), first.size), dtype=np.float32)
    for i, k in enumerate(keys):
        v = np.asarray(embeddings[k], dtype=np.float32).ravel()
        if v.size != first.size:
            raise UserError(f"{what}: '{k}' has dimension {v.size}, '{keys[0]}' has {first.size}; "
                            "embeddings from different models cannot be scored together")
        mat[i] = v
    return unit_rows(mat, what, keys)


def _rowwise_scores(mat: np.ndarray, a: np.ndarray, b: np.ndarray, chunk_size: int,
                    backend: Backend | None = None, counts: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = score(mat[a[i]], mat[b[i]])`` (cosine of unit rows, or the back-end's score; row
    ``a[i]`` a model of ``counts[a[i]]`` utterances), materialising at most ``chunk_size`` row pairs at a
    time."""
    out = np.empty(a.size, dtype=np.float64)
    for start in range(0, a.size, chunk_size):
        sl = slice(start, start + chunk_size)
        out[sl] = pair_scores(mat[a[sl]], mat[b[sl]], backend, None if counts is None else counts[a[sl]])
    return out


def cohort_stats(mat: np.ndarray, cohort: np.ndarray, top_n: int | None = None,
                 chunk_size: int = 4096, backend: Backend | None = None,
                 counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof=0) of each row of ``mat`` scored against every cohort row.

    With ``top_n`` (adaptive S-norm) only the ``top_n`` highest cohort scores of each row are used.
    Rows of both matrices must be unit-norm (cosine), or both mapped by ``backend`` (its scores); row
    ``i`` of ``mat`` may be an enrolment model of ``counts[i]`` utterances. Returns two (len(mat),)
    float64 arrays.
    """
    n_cohort = cohort.shape[0]
    if n_cohort < 2:
        raise UserError(f"score normalisation needs a cohort of at least 2 speakers, got {n_cohort}")
    if top_n is not None:
        if top_n < 2:
            raise UserError(f"--top-n must be at least 2 for adaptive S-norm, got {top_n}")
        if top_n >= n_cohort:
            logger.warning("top-n %d >= cohort size %d: adaptive S-norm uses the whole cohort (= S-norm)",
                           top_n, n_cohort)
            top_n = None
    # float64 products: with a small top-n the spread of the kept scores can be ~1e-3, where float32
    # rounding of the scores would already show in the normalised score.
    cohort64 = cohort.astype(np.float64)
    mu = np.empty(mat.shape[0], dtype=np.float64)
    sd = np.empty(mat.shape[0], dtype=np.float64)
    for start in range(0, mat.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        s = cross_scores(mat[sl].astype(np.float64), cohort64, backend,
                         None if counts is None else counts[sl])
        if top_n is not None:
            s = np.partition(s, n_cohort - top_n, axis=1)[:, n_cohort - top_n:]
        mu[sl] = s.mean(axis=1)
        sd[sl] = s.std(axis=1)
    if np.any(sd <= 0):
        raise UserError("cohort scores have zero spread for some utterance; "
                        "use a larger or more varied cohort")
    return mu, sd


@dataclass
class ScoredTrials:
    """Scores of the trials that could be scored; ``kept`` marks them in the original trial order."""

    scores: np.ndarray
    kept: np.ndarray
    missing_keys: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return int(self.kept.size - np.count_nonzero(self.kept))


def score_trials(enroll: Sequence[str], test: Sequence[str], embeddings: EmbeddingSource, *,
                 norm: str = "none", cohort: EmbeddingSource | None = None, top_n: int = 300,
                 allow_missing: bool = False, chunk_size: int = 100_000,
                 backend: Backend | None = None,
                 enroll_models: Mapping[str, Sequence[str]] | None = None) -> ScoredTrials:
    """Cosine-score ``enroll[i]`` against ``test[i]`` for every trial, optionally S-/AS-normalised.

    Trials whose enroll or test utterance has no embedding are an error naming how many are missing
    and the first few keys — unless ``allow_missing``, which skips those trials (``kept`` is False).
    ``norm``: ``none``, ``snorm`` (whole cohort) or ``asnorm`` (``top_n`` closest cohort entries).
    ``backend`` (mean + LDA [+ PLDA], :mod:`dmha.scoring.backend`) maps embeddings and cohort and scores
    them (cosine, or the PLDA log-likelihood ratio).
    ``enroll_models`` (model id -> its enrolment utterances, Kaldi's enrolment ``spk2utt``): the enroll
    column names models, each scored as :func:`dmha.scoring.backend.enrolment_models` builds it (the
    mean of its mapped utterances; PLDA by the count). A model missing from the map, or with an
    utterance without embedding, counts as a missing key.
    """
    if norm not in NORMS:
        raise UserError(f"unknown score normalisation '{norm}'; choose one of {', '.join(NORMS)}")
    if len(enroll) != len(test):
        raise UserError(f"{len(enroll)} enroll ids but {len(test)} test ids")
    table = open_embeddings(embeddings)
    if enroll_models is None:
        sides = list(dict.fromkeys([*enroll, *test]))
        missing = [u for u in sides if u not in table]
    else:
        models = list(dict.fromkeys(enroll))
        tests = list(dict.fromkeys(test))
        missing = [m for m in models if m not in enroll_models or not enroll_models[m]
                   or any(u not in table for u in enroll_models[m])]
        missing += [u for u in tests if u not in table]
        sides = [*models, *tests]
    if missing and not allow_missing:
        shown = " ".join(missing[:_SHOW_MISSING]) + (" ..." if len(missing) > _SHOW_MISSING else "")
        where = "" if isinstance(embeddings, Mapping) else f" in {embeddings}"
        what = "trial utterances have no embedding" if enroll_models is None else \
            "enrolment models (no utterances, or one without embedding) and test utterances (no embedding)"
        raise UserError(f"{len(missing)} of {len(sides)} {what}{where} "
                        f"(first: {shown}); extract them, or pass --allow-missing true to skip their trials")
    missing_set = set(missing)
    e_idx, t_idx, kept, mat, counts = _trial_rows(enroll, test, table, missing_set, backend, enroll_models)
    if missing:
        logger.warning("skipping %d of %d trials: %d %s have no embedding (first: %s)",
                       int((~kept).sum()), kept.size, len(missing),
                       "utterances" if enroll_models is None else "models or utterances",
                       " ".join(missing[:_SHOW_MISSING]))
    if e_idx.size == 0:
        raise UserError("no trial could be scored: every trial misses an embedding")
    scores = _rowwise_scores(mat, e_idx, t_idx, chunk_size, backend, counts)
    if norm != "none":
        if cohort is None:
            raise UserError(f"--norm {norm} needs a cohort (--cohort <spk_xvector.scp>)")
        cohort_table = open_embeddings(cohort)
        cohort_mat = normalized_matrix(cohort_table, list(cohort_table.keys()), what=f"cohort {cohort}")
        if backend is not None:
            cohort_mat = backend.apply(cohort_mat, what=f"cohort {cohort}")
        if cohort_mat.shape[1] != mat.shape[1]:
            raise UserError(f"cohort dimension {cohort_mat.shape[1]} != embedding dimension {mat.shape[1]}")
        mu, sd = cohort_stats(mat, cohort_mat, top_n if norm == "asnorm" else None, backend=backend,
                              counts=counts)
        scores = 0.5 * ((scores - mu[e_idx]) / sd[e_idx] + (scores - mu[t_idx]) / sd[t_idx])
    return ScoredTrials(scores=scores, kept=kept, missing_keys=missing)


def _trial_rows(enroll: Sequence[str], test: Sequence[str], table: Mapping, missing: set[str],
                backend: Backend | None, enroll_models: Mapping[str, Sequence[str]] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The scoring matrix of the trials' sides and each kept trial's rows in it.

    Returns ``(enroll rows, test rows, kept, matrix, counts)``: the matrix holds each side once, mapped by
    ``backend`` (unit rows without one); with ``enroll_models`` its first rows are the models and
    ``counts`` their numbers of utterances (None without models: every row is one utterance).
    """
    if enroll_models is None:
        present = [u for u in dict.fromkeys([*enroll, *test]) if u not in missing]
        index = {u: i for i, u in enumerate(present)}
        mat = normalized_matrix(table, present)
        if backend is not None:
            mat = backend.apply(mat, what="trial embeddings")
        counts = None
        e_index = t_index = index
    else:
        models = [m for m in dict.fromkeys(enroll) if m not in missing]
        tests = [u for u in dict.fromkeys(test) if u not in missing]
        utts = list(dict.fromkeys([*(u for m in models for u in enroll_models[m]), *tests]))
        row = {u: i for i, u in enumerate(utts)}
        mapped = normalized_matrix(table, utts)
        if backend is not None:
            mapped = backend.apply(mapped, what="trial embeddings")
        model_rows, counts = enrolment_models(mapped, [[row[u] for u in enroll_models[m]] for m in models],
                                              backend)
        mat = np.concatenate([model_rows, mapped[[row[u] for u in tests]]]).astype(np.float32)
        counts = np.concatenate([counts, np.ones(len(tests))])
        e_index = {m: i for i, m in enumerate(models)}
        t_index = {u: len(models) + i for i, u in enumerate(tests)}
    e_idx = np.fromiter((e_index.get(u, -1) for u in enroll), dtype=np.int64, count=len(enroll))
    t_idx = np.fromiter((t_index.get(u, -1) for u in test), dtype=np.int64, count=len(test))
    kept = (e_idx >= 0) & (t_idx >= 0)
    return e_idx[kept], t_idx[kept], kept, mat, counts
