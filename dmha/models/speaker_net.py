"""The speaker network: VGG front-end -> pooling -> dense layers -> 400-d embedding -> pre-layer.

Dense part (SPEC.md §2), ``dense_variant``:
  * ``reference`` (default, the public reference implementation): fc1 (pooled -> E) + ReLU;
    fc2 (E -> E) + ReLU + BatchNorm1d = the embedding; pre-layer E -> E linear feeds the loss.
  * ``paper`` (the paper's text): fc1 + BatchNorm1d + ReLU; fc2 + BatchNorm1d + ReLU = the embedding;
    the same pre-layer.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from dmha.models.config import ModelConfig
from dmha.models.frontend import VGGFrontend
from dmha.models.masking import check_lengths, lengths_to_mask
from dmha.models.pooling import build_pooling


def _dense(variant: str, in_dim: int, out_dim: int) -> nn.Sequential:
    if variant == "reference":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU())
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU())


class SpeakerNet(nn.Module):
    """Speaker classifier body; ``embed`` gives the speaker embedding, ``forward`` the loss input."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = VGGFrontend(cfg.widths(), cfg.in_dim, channels_last=cfg.channels_last)
        self.pooling = build_pooling(cfg.pooling, self.frontend.get_out_dim(), heads=cfg.heads,
                                     stage1_scale=cfg.stage1_scale, stage2_scale=cfg.stage2_scale,
                                     head_dropout=cfg.head_dropout)
        e = cfg.embed_dim
        self.fc1 = _dense(cfg.dense_variant, self.pooling.get_out_dim(), e)
        if cfg.dense_variant == "reference":
            self.fc2 = nn.Sequential(nn.Linear(e, e), nn.ReLU(), nn.BatchNorm1d(e))
        else:
            self.fc2 = _dense("paper", e, e)
        self.pre_layer = nn.Linear(e, e)
        self.embed_dim = e

    def embed(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """feats (B, T, F) mean-normalised log-mels, lengths (B,) valid frames -> embeddings (B, E)."""
        if feats.dim() != 3:
            raise ValueError(f"expected features (B, T, F), got {tuple(feats.shape)}")
        lengths = check_lengths(lengths, feats.shape[0], feats.shape[1])
        if lengths is not None:
            lengths = lengths.to(feats.device)
        frames, out_lengths = self.frontend(feats, lengths)
        mask = lengths_to_mask(out_lengths, frames.shape[1])
        pooled = self.pooling(frames, mask)
        return self.fc2(self.fc1(pooled))

    def forward(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The pre-layer output (B, E) that the AM-Softmax/AAM loss classifies."""
        return self.pre_layer(self.embed(feats, lengths))

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part: frontend, pooling, dense (fc1, fc2, pre-layer), total."""
        parts = {"frontend": self.frontend, "pooling": self.pooling,
                 "dense": nn.ModuleList([self.fc1, self.fc2, self.pre_layer])}
        counts = {k: count_parameters(m) for k, m in parts.items()}
        counts["total"] = count_parameters(self)
        return counts


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
