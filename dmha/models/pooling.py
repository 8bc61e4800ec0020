"""Temporal pooling layers (frame vectors -> one utterance vector), in a registry.

All layers share one interface (WeSpeaker style): ``Pool(in_dim, **options)``, ``forward(h, mask)``
with h (B, T, D) and mask (B, T) bool (True = valid frame, or None = no padding) returning (B, out),
and ``get_out_dim()``. Padded frames get exactly zero weight: their logits are set to -inf before the
softmax. That is safe because the model checks that every utterance has at least one valid frame.

Registry names: ``attention`` (single-head, out D), ``mha`` (K heads, out D), ``dmha`` (double
multi-head attention, out D/K), ``stats`` (mean + std, out 2D).

Options reproducing the reference implementation (paper behaviour is the default):
  * ``stage1_scale``: ``paper`` -> logits / sqrt(d_h); ``reference`` -> logits / sqrt(K).
  * ``stage2_scale`` (dmha): True -> head logits / sqrt(d_h); False -> unscaled (reference).
  * ``head_dropout`` (dmha): in training, each (sample, head) stage-2 logit is masked with probability
    p (reference: 1/3). Unlike the reference, at least one head per sample is always kept (a random
    one when all were dropped), so the softmax over heads never sees only -inf and never gives NaN.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

POOLINGS: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a pooling layer to :data:`POOLINGS` under ``name``."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        POOLINGS[name] = cls
        return cls
    return add


def build_pooling(name: str, in_dim: int, **options) -> nn.Module:
    """Instantiate the registered pooling ``name`` for frame vectors of size ``in_dim``."""
    if name not in POOLINGS:
        raise KeyError(f"unknown pooling {name!r}; choose one of {sorted(POOLINGS)}")
    return POOLINGS[name](in_dim, **options)


def _masked_softmax(logits: torch.Tensor, mask: Optional[torch.Tensor], dim: int) -> torch.Tensor:
    """Softmax over ``dim`` with masked-out entries at exactly zero weight.

    ``mask`` broadcasts against ``logits``; at least one entry per softmax must be valid (callers
    guarantee it), so -inf is safe. Softmax runs in float32 for bf16/fp16 inputs.
    """
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits.float(), dim=dim)


def _stage1_scale(mode: str, heads: int, head_dim: int) -> float:
    if mode == "paper":
        return 1.0 / math.sqrt(head_dim)
    if mode == "reference":
        return 1.0 / math.sqrt(heads)
    raise ValueError(f"stage1_scale must be 'paper' or 'reference', got {mode!r}")


def head_dropout_keep(batch: int, heads: int, p: float, device: torch.device,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, K) bool keep-mask: each entry dropped with probability p, never all heads of a sample.

    A sample whose heads were all dropped keeps one head chosen uniformly at random, so every
    stage-2 softmax has a finite logit. Branch-free (no host sync) so it is cheap on CUDA.
    """
    keep = torch.rand(batch, heads, device=device, generator=generator) >= p
    rescue = torch.randint(heads, (batch,), device=device, generator=generator)
    forced = nn.functional.one_hot(rescue, heads).bool() & ~keep.any(dim=1, keepdim=True)
    return keep | forced


class _MultiHeadStage1(nn.Module):
    """Stage 1 shared by attention/mha/dmha: per-head attention over time.

    Per-head dot products use a (B, T, K, d_h) view, O(T*D) work, never the reference's full
    (K*d_h) x K product. They are written as broadcast multiply + sum rather than einsum: einsum
    lowers these contractions to batched GEMMs with permute copies (one column per head), which
    bench/bench_train.py measured 1.6-4.5x slower (forward + backward, CPU) than the elementwise
    form; the results agree to float rounding.
    """

    def __init__(self, in_dim: int, heads: int, scale: float) -> None:
        super().__init__()
        if heads < 1 or in_dim % heads:
            raise ValueError(f"heads={heads} must divide the frame dimension {in_dim}")
        self.in_dim, self.heads, self.head_dim, self.scale = in_dim, heads, in_dim // heads, scale
        self.query = nn.Parameter(torch.empty(heads, self.head_dim))  # u_j, one row per head
        nn.init.xavier_normal_(self.query)

    def head_vectors(self, h: torch.Tensor, mask: Optional[torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, T, D) -> head vectors c (B, K, d_h) and weights w (B, T, K) (zero on padding)."""
        b, t, _ = h.shape
        hh = h.reshape(b, t, self.heads, self.head_dim)
        logits = (hh * self.query.to(hh.dtype)).sum(dim=-1) * self.scale       # (B, T, K)
        w = _masked_softmax(logits, None if mask is None else mask[:, :, None], dim=1)
        c = (w.to(hh.dtype).unsqueeze(-1) * hh).sum(dim=1)                      # (B, K, d_h)
        return c, w


@register("attention")
class AttentionPooling(nn.Module):
    """Single-head attention: w_t = softmax_t(h_t . u), c = sum_t w_t h_t (unscaled, as in the paper)."""

    def __init__(self, in_dim: int, **_unused) -> None:
        super().__init__()
        self.stage1 = _MultiHeadStage1(in_dim, 1, 1.0)

    def get_out_dim(self) -> int:
        return self.stage1.in_dim

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        c, _ = self.stage1.head_vectors(h, mask)
        return c.reshape(h.shape[0], -1)


@register("mha")
class MultiHeadAttentionPooling(nn.Module):
    """K-head attention: per-head attention over time on d_h = D/K slices; concatenated, out D."""

    def __init__(self, in_dim: int, heads: int = 8, stage1_scale: str = "paper", **_unused) -> None:
        super().__init__()
        self.stage1 = _MultiHeadStage1(in_dim, heads, _stage1_scale(stage1_scale, heads, in_dim // heads))

    def get_out_dim(self) -> int:
        return self.stage1.in_dim

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        c, _ = self.stage1.head_vectors(h, mask)
        return c.reshape(h.shape[0], -1)


@register("dmha")
class DoubleMHAPooling(nn.Module):
    """Double multi-head attention: MHA stage 1, then attention over the K head vectors; out d_h."""

    def __init__(self, in_dim: int, heads: int = 8, stage1_scale: str = "paper", stage2_scale: bool = True,
                 head_dropout: float = 0.0, **_unused) -> None:
        super().__init__()
        if not 0.0 <= head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {head_dropout}")
        self.stage1 = _MultiHeadStage1(in_dim, heads, _stage1_scale(stage1_scale, heads, in_dim // heads))
        d_h = self.stage1.head_dim
        self.head_query = nn.Parameter(torch.empty(d_h, 1))  # u'
        nn.init.xavier_normal_(self.head_query)
        self.stage2_scale = 1.0 / math.sqrt(d_h) if stage2_scale else 1.0
        self.head_dropout = float(head_dropout)

    def get_out_dim(self) -> int:
        return self.stage1.head_dim

    def weights(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (pooled (B, d_h), stage-1 weights (B, T, K), stage-2 head weights (B, K))."""
        c, w1 = self.stage1.head_vectors(h, mask)
        logits = (c @ self.head_query.to(c.dtype)).squeeze(-1) * self.stage2_scale  # (B, K)
        keep = None
        if self.training and self.head_dropout > 0.0:
            keep = head_dropout_keep(c.shape[0], c.shape[1], self.head_dropout, c.device)
        w2 = _masked_softmax(logits, keep, dim=1)
        pooled = torch.einsum("bk,bkd->bd", w2.to(c.dtype), c)
        return pooled, w1, w2

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.weights(h, mask)[0]


@register("stats")
class StatsPooling(nn.Module):
    """Mean and standard deviation over valid frames, concatenated (out 2D).

    The variance is the population variance (divide by the frame count), floored at ``eps`` before
    the square root so one-frame utterances and constant channels have a finite gradient.
    """

    def __init__(self, in_dim: int, eps: float = 1e-5, **_unused) -> None:
        super().__init__()
        self.in_dim, self.eps = in_dim, eps

    def get_out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = h.float()
        if mask is None:
            mean = h.mean(dim=1)
            var = ((h - mean[:, None]) ** 2).mean(dim=1)
        else:
            m = mask[:, :, None].to(h.dtype)
            n = m.sum(dim=1)
            mean = (h * m).sum(dim=1) / n
            var = (((h - mean[:, None]) ** 2) * m).sum(dim=1) / n
        return torch.cat([mean, var.clamp(min=self.eps).sqrt()], dim=1)
