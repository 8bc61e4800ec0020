"""Batched whole-utterance embedding extraction (used by validation during training and by stage 4).

Why batching this way: utterances are sorted by length so a batch pads little, batches are bounded by
padded frames (memory) and by count, and the model receives the true lengths so padded frames are
masked out. Each utterance is CMN'd over its own valid frames with the one normalisation function
(:func:`dmha.features.fbank.normalize_features`), so an embedding does not depend on the batch it lands in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from dmha.embed.batching import length_batches
from dmha.features.fbank import normalize_features
from dmha.models.precision import bf16_autocast

__all__ = ["embed_feature_list", "length_batches"]


def _as_tensor(mat: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 tensor of a feature matrix; numpy arrays are copied (kaldiio may hand out read-only ones,
    which torch cannot wrap safely)."""
    if isinstance(mat, torch.Tensor):
        return mat.float()
    return torch.from_numpy(np.array(mat, dtype=np.float32))


@torch.no_grad()
def embed_feature_list(model: nn.Module, feats: Sequence[np.ndarray | torch.Tensor],
                       device: torch.device | str = "cpu", max_frames_per_batch: int = 20000,
                       batch_size: int = 64, norm: str = "cmn", bf16: bool = False,
                       lengths: Sequence[int] | None = None) -> np.ndarray:
    """Embed raw (T_i, F) feature matrices -> float32 array (N, embed_dim), in input order.

    ``model.embed(x, lengths)`` gets CMN'd, zero-padded (B, T, F) batches with their lengths. The model
    is put in eval mode for the call and its previous mode restored afterwards. ``bf16`` enables bf16
    autocast on the device (CPU or CUDA; see :mod:`dmha.models.precision` for where that pays off).
    ``feats`` is only indexed batch by batch, so it may read from disk on access
    (:class:`dmha.training.dataset.ScpFeatures`); pass its ``lengths`` then, or every matrix is read twice.
    """
    device = torch.device(device)
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    lengths = [int(t) for t in lengths] if lengths is not None else [int(f.shape[0]) for f in feats]
    out: np.ndarray | None = None
    autocast = bf16_autocast(bf16, device)
    try:
        for idx in length_batches(lengths, max_frames_per_batch, batch_size):
            mats = [_as_tensor(feats[i]) for i in idx]  # one read each (feats may load on access)
            lens = torch.tensor([lengths[i] for i in idx], dtype=torch.long)
            x = torch.nn.utils.rnn.pad_sequence(mats, batch_first=True)
            x = normalize_features(x, mode=norm, lengths=lens).to(device)
            with autocast:
                emb = core.embed(x, lens.to(device))
            emb = emb.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(feats), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
    finally:
        core.train(was_training)
    if out is None:
        out = np.zeros((0, int(getattr(core, "embed_dim", 0))), dtype=np.float32)
    return out
