"""Embedding tables: whole-utterance embeddings with an optional length cap, and per-speaker means.

The batching itself is :func:`dmha.embed.batched.embed_feature_list` (the code training validates with);
this module adds what stage 4 and the API need on top of it, in one place so both give the same
numbers:

* **Length cap** (``max_chunk_frames``, 0 = off). An utterance of T > N frames is normalised (CMN over
  all its T frames, as without the cap), then cut into ``k = ceil(T / N)`` contiguous chunks of equal
  length (sizes differ by at most one frame, none longer than N), each chunk is embedded, and the
  utterance embedding is the **mean of the L2-normalised chunk embeddings**. Why: memory of one batch
  grows with the longest utterance; very long recordings (minutes) would otherwise need a batch of
  their own the size of the GPU. Utterances of at most N frames are embedded exactly as without the cap.
* **Speaker means** (``spk_xvector``): the mean of the **L2-normalised** utterance embeddings of each
  speaker (not re-normalised; its norm, <= 1, shows how consistent the speaker's utterances are). Why
  normalised first: scoring is cosine, so only directions count, and every utterance should weigh the
  same whatever the norm of its raw embedding. ``dmha.scoring.cosine`` L2-normalises the means again before
  using them as the S-norm / AS-norm cohort.

The rule is the same in both places: whenever dmha averages embeddings, it averages unit vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from dmha.common.errors import UserError
from dmha.embed.batched import embed_feature_list
from dmha.features.fbank import normalize_features


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def chunk_bounds(num_frames: int, max_chunk_frames: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``0..num_frames`` in ``ceil(T/N)`` near-equal chunks (N = 0: one)."""
    if max_chunk_frames < 0:
        raise UserError(f"--max-chunk-frames must be >= 0 (0 = no cap), got {max_chunk_frames}")
    if max_chunk_frames == 0 or num_frames <= max_chunk_frames:
        return [(0, num_frames)]
    k = math.ceil(num_frames / max_chunk_frames)
    edges = [round(i * num_frames / k) for i in range(k + 1)]
    return [(edges[i], edges[i + 1]) for i in range(k)]


def default_batch_frames(device: torch.device | str) -> int:
    """Padded frames per extraction batch when the user gives none: large on CUDA, small on CPU.

    Why: on a GPU big batches are what makes extraction fast, but on CPU the NHWC (oneDNN) convolutions
    of a single utterance already use the cores well and a 20,000-frame batch falls out of cache:
    measured with bench/bench_extract.py on 2 cores, 20,000 frames ran at 0.58x of batch-1 and
    2,000 frames at 1.29x.
    """
    return 20000 if torch.device(device).type == "cuda" else 2000


class _Subset(Sequence):
    """``base[idx[0]], base[idx[1]], ...`` without reading them all now (base may load on access)."""

    def __init__(self, base: Sequence, idx: Sequence[int]) -> None:
        self.base, self.idx = base, list(idx)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int):  # type: ignore[override]
        return self.base[self.idx[i]]


def embed_utterances(model: nn.Module, feats: Sequence[np.ndarray | torch.Tensor], *,
                     device: torch.device | str = "cpu", norm: str = "cmn", batch_frames: int = 0,
                     batch_size: int = 64, max_chunk_frames: int = 0, bf16: bool = False,
                     lengths: Sequence[int] | None = None) -> np.ndarray:
    """Embed raw (T_i, F) features -> float32 (N, embed_dim), in input order, with the optional cap.

    Without a cap (or for utterances of at most ``max_chunk_frames`` frames) this is exactly
    :func:`dmha.embed.batched.embed_feature_list`. Longer utterances are normalised whole, cut into chunks
    (:func:`chunk_bounds`) and represented by the mean of their unit-norm chunk embeddings.
    ``batch_frames=0`` picks :func:`default_batch_frames` for the device. ``feats`` may read from disk
    on access (see :func:`dmha.embed.batched.embed_feature_list`); ``lengths``, if given, are its row counts.
    """
    lengths = [int(t) for t in lengths] if lengths is not None else [int(f.shape[0]) for f in feats]
    for i, t in enumerate(lengths):
        if t < 1:
            raise UserError(f"utterance {i} has no frames; remove it from the data dir "
                            "(utils/fix_data_dir.sh)")
    long_idx = [i for i, t in enumerate(lengths) if max_chunk_frames and t > max_chunk_frames]
    short_idx = [i for i, t in enumerate(lengths) if not (max_chunk_frames and t > max_chunk_frames)]
    out: np.ndarray | None = None
    batch_frames = batch_frames or default_batch_frames(device)
    opts = dict(device=device, max_frames_per_batch=batch_frames, batch_size=batch_size, bf16=bf16)
    if short_idx:
        emb = embed_feature_list(model, _Subset(feats, short_idx), norm=norm,
                                 lengths=[lengths[i] for i in short_idx], **opts)
        out = np.zeros((len(feats), emb.shape[1]), dtype=np.float32)
        out[short_idx] = emb
    if long_idx:
        pieces: list[np.ndarray] = []
        owner: list[int] = []
        for i in long_idx:
            # Normalise over the whole utterance, then cut: each chunk holds the very frames the
            # un-capped model input would hold (the model then gets them with norm="none").
            whole = normalize_features(np.asarray(feats[i], dtype=np.float32), mode=norm)
            for s, e in chunk_bounds(lengths[i], max_chunk_frames):
                pieces.append(whole[s:e])
                owner.append(i)
        emb = l2_normalize(embed_feature_list(model, pieces, norm="none", **opts))
        if out is None:
            out = np.zeros((len(feats), emb.shape[1]), dtype=np.float32)
        owner_arr = np.asarray(owner)
        for i in long_idx:
            out[i] = emb[owner_arr == i].mean(axis=0)
    if out is None:
        dim = int(getattr(model.module if hasattr(model, "module") else model, "embed_dim", 0))
        out = np.zeros((0, dim), dtype=np.float32)
    return out


def speaker_means(embeddings: Mapping[str, np.ndarray], spk2utt: Mapping[str, Sequence[str]],
                  where: str = "embeddings") -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per-speaker mean of the L2-normalised utterance embeddings, and utterances per speaker.

    Every utterance of ``spk2utt`` must have an embedding (a missing one is a :class:`UserError` naming
    it); a speaker without utterances is skipped.
    """
    means: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for spk, utts in spk2utt.items():
        if not utts:
            continue
        missing = [u for u in utts if u not in embeddings]
        if missing:
            raise UserError(f"{where}: no embedding for utterance '{missing[0]}' of speaker '{spk}' "
                            f"({len(missing)} missing); re-run the extraction")
        mat = l2_normalize(np.stack([np.asarray(embeddings[u], dtype=np.float32) for u in utts]))
        means[spk] = mat.mean(axis=0).astype(np.float32)
        counts[spk] = len(utts)
    return means, counts
